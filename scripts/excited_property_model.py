"""Rule glue for `excited_property_model`: fit the bright-state ΔE/f model."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.excited import stages  # noqa: E402

stages.train_property_model(
    db_paths=list(snakemake.input.dbs),
    records_paths=list(snakemake.input.records),
    cfg=snakemake.params.cfg,
    model_out=snakemake.output.model,
    metrics_out=snakemake.output.metrics,
    log_path=snakemake.log[0],
)
