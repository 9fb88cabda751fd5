"""Rule glue for `metadynamics_fes`: free-energy profile with replica error bars."""

from mlmm.dynamics import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.metadynamics_fes,
    record_out=snakemake.output.json,
    hills=list(snakemake.input.hills),
    replica_stats=list(snakemake.input.stats),
    n_bins=snakemake.params.bins,
    csv_out=snakemake.output.csv,
    png_out=snakemake.output.png,
)
