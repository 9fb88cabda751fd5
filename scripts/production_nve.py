"""Rule glue for `production_nve`: NVE check run and its energy drift."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.dynamics import stages  # noqa: E402

stages.production_nve(
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    production_cfg=snakemake.params.production,
    system_cfg=snakemake.params.system,
    timeseries_out=snakemake.output.timeseries,
    stats_out=snakemake.output.stats,
    log_path=snakemake.log[0],
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
    threads=snakemake.threads,
)
