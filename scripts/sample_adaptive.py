"""Rule glue for `sample_adaptive` (see mlmm.sampling.stages.sample_adaptive)."""

from mlmm.sampling import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.sample_adaptive,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    system_cfg=snakemake.params.system,
    sampler_cfg=snakemake.params.sampler,
    frames_out=snakemake.output.frames,
    plot_out=snakemake.output.plot,
)
