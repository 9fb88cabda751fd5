"""Rule glue for `excited_labels` / `excited_reference`: TDA/TDDFT labels of a subset of frames."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.excited import stages  # noqa: E402

stages.label_excited(
    frames_path=snakemake.input.frames,
    n_frames=snakemake.params.n_frames,
    level_cfg=snakemake.params.level,
    td_cfg=snakemake.params.td,
    records_out=snakemake.output.records,
    db_out=snakemake.output.get("db"),
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
