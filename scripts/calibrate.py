"""Rule glue for `calibrate`: σ vs true force error of the ensemble on the fixed test set."""

from mlmm.model import stages
from mlmm.runner import run_stage
from mlmm.settings import TrainingSettings

run_stage(
    snakemake,
    stages.calibrate_ensemble,
    record_out=snakemake.output[0],
    models=list(snakemake.input.models),
    test_db=snakemake.input.test_db,
    training=TrainingSettings.from_dict(snakemake.params.training),
    iteration=int(snakemake.wildcards.it),
)
