"""Rule glue for `sample_pca` (see mlmm.sampling.stages.sample_pca)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.sampling import stages  # noqa: E402

stages.sample_pca(
    trajectory_frames=snakemake.input.trajectory,
    sampler_cfg=snakemake.params.sampler,
    frames_out=snakemake.output.frames,
    stats_out=snakemake.output.stats,
    plot_out=snakemake.output.plot,
    log_path=snakemake.log[0],
)
