"""Rule glue for `label_handback`: label the production frames handed back (σ > sigma_stop)."""

from mlmm import stages
from mlmm.runner import run_stage
from mlmm.settings import LevelSettings

run_stage(
    snakemake,
    stages.label_chunk,
    frames_path=snakemake.input.frames,
    chunk_index=0,
    chunk_size=snakemake.params.chunk_size,
    level=LevelSettings.from_dict(snakemake.params.level),
    db_out=snakemake.output.db,
    report_out=snakemake.output.report,
    threads=snakemake.threads,
)
