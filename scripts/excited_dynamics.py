"""Rule glue for `excited_dynamics`: bright-state MLP/MM MD replicas."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.excited import stages  # noqa: E402

stages.excited_dynamics(
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    dyn_cfg=snakemake.params.dynamics,
    system_cfg=snakemake.params.system,
    frames_out=snakemake.output.frames,
    stats_out=snakemake.output.stats,
    log_path=snakemake.log[0],
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
    threads=snakemake.threads,
)
