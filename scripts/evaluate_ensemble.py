"""Rule glue for `evaluate_ensemble`: ensemble errors on the held-out test frames."""

from mlmm.model import stages
from mlmm.runner import run_stage
from mlmm.settings import TrainingSettings

run_stage(
    snakemake,
    stages.evaluate_ensemble,
    record_out=snakemake.output[0],
    models=list(snakemake.input.models),
    dbs=list(snakemake.input.dbs),
    training=TrainingSettings.from_dict(snakemake.params.training),
)
