"""Rule glue for `training_plots`: learning curves, parity and calibration figures."""

from mlmm.model import stages
from mlmm.runner import run_stage
from mlmm.settings import TrainingSettings

run_stage(
    snakemake,
    stages.training_plots,
    metrics=list(snakemake.input.metrics),
    models=list(snakemake.input.models),
    test_db=snakemake.input.test_db,
    calibrations=list(snakemake.input.calibrations),
    training=TrainingSettings.from_dict(snakemake.params.training),
    learning_png=snakemake.output.learning,
    parity_png=snakemake.output.parity,
    calibration_png=snakemake.output.calibration,
    index_out=snakemake.output.index,
)
