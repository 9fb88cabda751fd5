"""Rule glue for `delta_labels`: reference − baseline labels for Δ-learning."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.model import stages  # noqa: E402

stages.delta_labels(
    labels_db=snakemake.input[0],
    baseline=snakemake.wildcards.baseline,
    out_db=snakemake.output.db,
    stats_out=snakemake.output.stats,
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
