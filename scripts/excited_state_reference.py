"""Rule glue for `excited_state_reference`: the run's one bright-state reference."""

from mlmm.excited import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.excited_state_reference,
    record_out=snakemake.output[0],
    frame_path=snakemake.input.frame,
    level_cfg=snakemake.params.level,
    td_cfg=snakemake.params.td,
)
