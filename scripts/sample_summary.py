"""Rule glue for `sampling_summary` (see mlmm.sampling.stages.summarize_samplers)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.sampling import stages  # noqa: E402

stages.summarize_samplers(
    stats=list(snakemake.input.stats),
    summary_out=snakemake.output.summary,
    log_path=snakemake.log[0],
)
