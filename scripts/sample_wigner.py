"""Rule glue for `sample_wigner` (see mlmm.sampling.stages.sample_wigner)."""

from mlmm.sampling import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.sample_wigner,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    environment_frames=snakemake.input.environment,
    system_cfg=snakemake.params.system,
    sampler_cfg=snakemake.params.sampler,
    frames_out=snakemake.output.frames,
    plot_out=snakemake.output.plot,
)
