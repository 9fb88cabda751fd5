"""Rule glue for `summary`: write results/summary.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm import stages  # noqa: E402

stages.summary(
    label_dbs=list(snakemake.input.label_dbs),
    label_reports=list(snakemake.input.label_reports),
    evaluations=list(snakemake.input.evaluations),
    selections=list(snakemake.input.selections),
    models=list(snakemake.input.models),
    extras=dict(zip(snakemake.params.extra_keys, snakemake.input.extras)),
    out=snakemake.output[0],
    log_path=snakemake.log[0],
)
