"""Rule glue for `sample_adaptive` (see mlmm.sampling.stages.sample_adaptive)."""

from mlmm.sampling import stages
from mlmm.runner import run_stage
from mlmm.settings import AdaptiveSettings, SystemSettings

run_stage(
    snakemake,
    stages.sample_adaptive,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    system=SystemSettings.from_dict(snakemake.params.system),
    sampler=AdaptiveSettings.from_dict(snakemake.params.sampler),
    frames_out=snakemake.output.frames,
    plot_out=snakemake.output.plot,
)
