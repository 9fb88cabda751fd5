"""Rule glue for `production`: one NVT MLP/MM replica with the final or initial ensemble."""

from mlmm.dynamics import stages
from mlmm.runner import run_stage
from mlmm.settings import ProductionSettings, SystemSettings

run_stage(
    snakemake,
    stages.production,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    production=ProductionSettings.from_dict(snakemake.params.production),
    system_settings=SystemSettings.from_dict(snakemake.params.system),
    model_label=snakemake.wildcards.model,
    replica=int(snakemake.wildcards.replica),
    trajectory_out=snakemake.output.trajectory,
    topology_out=snakemake.output.topology,
    timeseries_out=snakemake.output.timeseries,
    handback_out=snakemake.output.handback,
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
)
