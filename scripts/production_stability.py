"""Rule glue for `production_stability`: final vs iteration-0 ensemble in production."""

from mlmm.dynamics import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.stability,
    record_out=snakemake.output[0],
    final_stats=list(snakemake.input.final),
    initial_stats=list(snakemake.input.initial),
)
