"""Rule glue for `evaluate_ensemble`: ensemble errors on the held-out test frames."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.model import stages  # noqa: E402

stages.evaluate_ensemble(
    models=list(snakemake.input.models),
    dbs=list(snakemake.input.dbs),
    training_cfg=snakemake.params.training,
    out=snakemake.output[0],
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
