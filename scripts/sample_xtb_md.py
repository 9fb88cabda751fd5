"""Rule glue for `sample_xtb_md`: GFN2-xTB/TIP3P Langevin sampling."""

from mlmm.sampling import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.sample_xtb_md,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    system_cfg=snakemake.params.system,
    sampler_cfg=snakemake.params.sampler,
    frames_out=snakemake.output.frames,
)
