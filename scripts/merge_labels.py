"""Rule glue for `merge_labels`: merge chunk databases into one schnetpack database per iteration."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm import stages  # noqa: E402

stages.merge_labels(
    dbs=list(snakemake.input.dbs),
    reports=list(snakemake.input.reports),
    db_out=snakemake.output.db,
    report_out=snakemake.output.report,
    log_path=snakemake.log[0],
)
