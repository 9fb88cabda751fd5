"""Rule glue for `train_member`: train one ensemble member."""

from mlmm.model import stages
from mlmm.runner import run_stage
from mlmm.settings import TrainingSettings

run_stage(
    snakemake,
    stages.train_member,
    record_out=snakemake.output.metrics,
    dbs=list(snakemake.input.dbs),
    iteration=int(snakemake.wildcards.it),
    member=int(snakemake.wildcards.member),
    training=TrainingSettings.from_dict(snakemake.params.training),
    selection=list(snakemake.input.selection),
    previous_model=list(snakemake.input.previous),
    model_out=snakemake.output.model,
    log_dir=snakemake.params.logdir,
    threads=snakemake.threads,
)
