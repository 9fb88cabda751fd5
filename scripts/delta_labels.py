"""Rule glue for `delta_labels`: reference − baseline labels for Δ-learning."""

from mlmm.model import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.delta_labels,
    labels_db=snakemake.input[0],
    baseline=snakemake.wildcards.baseline,
    out_db=snakemake.output.db,
    stats_out=snakemake.output.stats,
)
