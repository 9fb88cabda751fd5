"""Rule glue for `excited_state_reference`: the run's one bright-state reference."""

from mlmm.excited import stages
from mlmm.runner import run_stage
from mlmm.settings import LevelSettings, TDSettings

run_stage(
    snakemake,
    stages.excited_state_reference,
    record_out=snakemake.output[0],
    frame_path=snakemake.input.frame,
    level=LevelSettings.from_dict(snakemake.params.level, "excited.level"),
    td=TDSettings.from_dict(snakemake.params.td),
)
