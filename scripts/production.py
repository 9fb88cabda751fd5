"""Rule glue for `production`: MLP/MM production MD with the final ensemble."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.dynamics import stages  # noqa: E402

stages.production(
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    production_cfg=snakemake.params.production,
    system_cfg=snakemake.params.system,
    trajectory_out=snakemake.output.trajectory,
    topology_out=snakemake.output.topology,
    sigma_out=snakemake.output.sigma,
    stats_out=snakemake.output.stats,
    log_path=snakemake.log[0],
    threads=snakemake.threads,
)
