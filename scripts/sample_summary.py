"""Rule glue for `sampling_summary` (see mlmm.sampling.stages.summarize_samplers)."""

from mlmm.sampling import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.summarize_samplers,
    record_out=snakemake.output.summary,
    stats=list(snakemake.input.stats),
)
