"""Rule glue for `excited_labels` / `excited_reference`: TDA/TDDFT labels of a subset of frames."""

from mlmm.excited import stages
from mlmm.runner import run_stage
from mlmm.settings import LevelSettings, TDSettings

run_stage(
    snakemake,
    stages.label_excited,
    record_out=snakemake.output.records,
    frames_path=snakemake.input.frames,
    n_frames=snakemake.params.n_frames,
    level=LevelSettings.from_dict(snakemake.params.level, "excited.level"),
    td=TDSettings.from_dict(snakemake.params.td),
    db_out=snakemake.output.get("db"),
    samplers=snakemake.params.get("samplers"),
    state_reference=snakemake.input.state_reference,
)
