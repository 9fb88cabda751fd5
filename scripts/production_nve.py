"""Rule glue for `production_nve`: NVE check run and its energy drift."""

from mlmm.dynamics import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.production_nve,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    production_cfg=snakemake.params.production,
    system_cfg=snakemake.params.system,
    timeseries_out=snakemake.output.timeseries,
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
)
