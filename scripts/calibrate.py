"""Rule glue for `calibrate`: σ vs true force error of the ensemble on held-out frames."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.model import stages  # noqa: E402

stages.calibrate_ensemble(
    models=list(snakemake.input.models),
    dbs=list(snakemake.input.dbs),
    training_cfg=snakemake.params.training,
    iteration=int(snakemake.wildcards.it),
    out=snakemake.output[0],
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
