"""Rule glue for `sample_normal_modes` (see mlmm.sampling.stages.sample_normal_modes)."""

from mlmm.sampling import stages
from mlmm.runner import run_stage
from mlmm.settings import NormalModesSettings, SystemSettings

run_stage(
    snakemake,
    stages.sample_normal_modes,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    environment_frames=snakemake.input.environment,
    system=SystemSettings.from_dict(snakemake.params.system),
    sampler=NormalModesSettings.from_dict(snakemake.params.sampler),
    frames_out=snakemake.output.frames,
    plot_out=snakemake.output.plot,
)
