"""Rule glue for `sample_xtb_md`: GFN2-xTB/TIP3P Langevin sampling."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.sampling import stages  # noqa: E402

stages.sample_xtb_md(
    structure=snakemake.input.structure,
    system_cfg=snakemake.params.system,
    sampler_cfg=snakemake.params.sampler,
    frames_out=snakemake.output.frames,
    stats_out=snakemake.output.stats,
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
