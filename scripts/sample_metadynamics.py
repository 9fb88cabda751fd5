"""Rule glue for `sample_metadynamics` (see mlmm.sampling.stages.sample_metadynamics)."""

from mlmm.sampling import stages
from mlmm.runner import run_stage
from mlmm.settings import MetadynamicsSamplerSettings, SystemSettings

run_stage(
    snakemake,
    stages.sample_metadynamics,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    system=SystemSettings.from_dict(snakemake.params.system),
    sampler=MetadynamicsSamplerSettings.from_dict(snakemake.params.sampler),
    frames_out=snakemake.output.frames,
    plot_out=snakemake.output.plot,
)
