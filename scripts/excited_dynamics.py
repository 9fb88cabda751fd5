"""Rule glue for `excited_dynamics`: bright-state MLP/MM MD replicas."""

from mlmm.excited import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.excited_dynamics,
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    dyn_cfg=snakemake.params.dynamics,
    system_cfg=snakemake.params.system,
    frames_out=snakemake.output.frames,
    stats_out=snakemake.output.stats,
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
)
