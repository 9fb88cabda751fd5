"""Rule glue for `production_metadynamics`: one MLP/MM metaD replica."""

from mlmm.dynamics import stages
from mlmm.runner import run_stage
from mlmm.settings import ProductionSettings, SystemSettings

run_stage(
    snakemake,
    stages.production_metadynamics,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    production=ProductionSettings.from_dict(snakemake.params.production),
    system_settings=SystemSettings.from_dict(snakemake.params.system),
    replica=int(snakemake.wildcards.replica),
    out_dir=snakemake.params.out_dir,
    timeseries_out=snakemake.output.timeseries,
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
)
