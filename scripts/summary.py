"""Rule glue for `summary`: write results/summary.json."""

from mlmm import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.summary,
    label_dbs=list(snakemake.input.label_dbs),
    label_reports=list(snakemake.input.label_reports),
    evaluations=list(snakemake.input.evaluations),
    selections=list(snakemake.input.selections),
    models=list(snakemake.input.models),
    extras=dict(zip(snakemake.params.extra_keys, snakemake.input.extras)),
    out=snakemake.output[0],
)
