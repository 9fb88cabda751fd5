"""Rule glue for `production_nve`: NVE check run and its energy drift."""

from mlmm.dynamics import stages
from mlmm.runner import run_stage
from mlmm.settings import ProductionSettings, SystemSettings

run_stage(
    snakemake,
    stages.production_nve,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    production=ProductionSettings.from_dict(snakemake.params.production),
    system_settings=SystemSettings.from_dict(snakemake.params.system),
    timeseries_out=snakemake.output.timeseries,
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
)
