"""Rule glue for `production`: one NVT MLP/MM replica with the final or initial ensemble."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.dynamics import stages  # noqa: E402

stages.production(
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    production_cfg=snakemake.params.production,
    system_cfg=snakemake.params.system,
    model_label=snakemake.wildcards.model,
    replica=int(snakemake.wildcards.replica),
    trajectory_out=snakemake.output.trajectory,
    topology_out=snakemake.output.topology,
    timeseries_out=snakemake.output.timeseries,
    handback_out=snakemake.output.handback,
    stats_out=snakemake.output.stats,
    log_path=snakemake.log[0],
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
    threads=snakemake.threads,
)
