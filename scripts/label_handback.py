"""Rule glue for `label_handback`: label the production frames handed back (σ > sigma_stop)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm import stages  # noqa: E402

stages.label_chunk(
    frames_path=snakemake.input.frames,
    chunk_index=0,
    chunk_size=snakemake.params.chunk_size,
    level_cfg=snakemake.params.level,
    db_out=snakemake.output.db,
    report_out=snakemake.output.report,
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
