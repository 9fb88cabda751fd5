"""Rule glue for `train_member`: train one ensemble member."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.model import stages  # noqa: E402

stages.train_member(
    dbs=list(snakemake.input.dbs),
    iteration=int(snakemake.wildcards.it),
    member=int(snakemake.wildcards.member),
    training_cfg=snakemake.params.training,
    selection=list(snakemake.input.selection),
    previous_model=list(snakemake.input.previous),
    model_out=snakemake.output.model,
    metrics_out=snakemake.output.metrics,
    log_dir=snakemake.params.logdir,
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
