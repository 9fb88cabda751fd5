"""Rule glue for `excited_train_member`: one bright-state ensemble member (ordinary training code)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.model import stages  # noqa: E402

stages.train_member(
    dbs=[snakemake.input.db],
    iteration=0,
    member=int(snakemake.wildcards.member),
    training_cfg=snakemake.params.training,
    selection=[],
    previous_model=[],
    model_out=snakemake.output.model,
    metrics_out=snakemake.output.metrics,
    log_dir=snakemake.params.logdir,
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
