"""Rule glue for `excited_property_model`: fit the bright-state ΔE/f model."""

from mlmm.excited import stages
from mlmm.runner import run_stage
from mlmm.settings import PropertyModelSettings

run_stage(
    snakemake,
    stages.train_property_model,
    db_paths=list(snakemake.input.dbs),
    records_paths=list(snakemake.input.records),
    settings=PropertyModelSettings.from_dict(snakemake.params.cfg),
    model_out=snakemake.output.model,
    metrics_out=snakemake.output.metrics,
)
