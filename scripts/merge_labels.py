"""Rule glue for `merge_labels`: merge chunk databases into one schnetpack database per iteration."""

from mlmm import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.merge_labels,
    record_out=snakemake.output.report,
    dbs=list(snakemake.input.dbs),
    reports=list(snakemake.input.reports),
    db_out=snakemake.output.db,
)
