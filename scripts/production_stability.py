"""Rule glue for `production_stability`: final vs iteration-0 ensemble in production."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.dynamics import stages  # noqa: E402

stages.stability(
    final_stats=list(snakemake.input.final),
    initial_stats=list(snakemake.input.initial),
    out=snakemake.output[0],
    log_path=snakemake.log[0],
)
