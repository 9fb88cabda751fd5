"""Rule glue for `training_plots`: learning curves, parity and calibration figures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.model import stages  # noqa: E402

stages.training_plots(
    metrics=list(snakemake.input.metrics),
    models=list(snakemake.input.models),
    dbs=list(snakemake.input.dbs),
    calibrations=list(snakemake.input.calibrations),
    training_cfg=snakemake.params.training,
    learning_png=snakemake.output.learning,
    parity_png=snakemake.output.parity,
    calibration_png=snakemake.output.calibration,
    index_out=snakemake.output.index,
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
