"""Rule glue for `sample_wigner` (see mlmm.sampling.stages.sample_wigner)."""

from mlmm.sampling import stages
from mlmm.runner import run_stage
from mlmm.settings import SystemSettings, WignerSettings

run_stage(
    snakemake,
    stages.sample_wigner,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    environment_frames=snakemake.input.environment,
    system=SystemSettings.from_dict(snakemake.params.system),
    sampler=WignerSettings.from_dict(snakemake.params.sampler),
    frames_out=snakemake.output.frames,
    plot_out=snakemake.output.plot,
)
