"""Rule glue for `calibrate`: σ vs true force error of the ensemble on held-out frames."""

from mlmm.model import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.calibrate_ensemble,
    record_out=snakemake.output[0],
    models=list(snakemake.input.models),
    dbs=list(snakemake.input.dbs),
    training_cfg=snakemake.params.training,
    iteration=int(snakemake.wildcards.it),
)
