"""Rule glue for `metadynamics_fes`: free-energy profile with replica error bars."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.dynamics import stages  # noqa: E402

stages.metadynamics_fes(
    hills=list(snakemake.input.hills),
    replica_stats=list(snakemake.input.stats),
    n_bins=snakemake.params.bins,
    csv_out=snakemake.output.csv,
    png_out=snakemake.output.png,
    json_out=snakemake.output.json,
    log_path=snakemake.log[0],
)
