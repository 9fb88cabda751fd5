"""Rule glue for `sample_wigner` (see mlmm.sampling.stages.sample_wigner)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.sampling import stages  # noqa: E402

stages.sample_wigner(
    structure=snakemake.input.structure,
    environment_frames=snakemake.input.environment,
    system_cfg=snakemake.params.system,
    sampler_cfg=snakemake.params.sampler,
    frames_out=snakemake.output.frames,
    stats_out=snakemake.output.stats,
    plot_out=snakemake.output.plot,
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
