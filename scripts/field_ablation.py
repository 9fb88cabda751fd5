"""Rule glue for `field_ablation`: held-out errors and environment scan with and without the MM field input."""

from mlmm.model import stages
from mlmm.runner import run_stage
from mlmm.settings import LevelSettings, TrainingSettings

run_stage(
    snakemake,
    stages.field_ablation,
    record_out=snakemake.output.json,
    field_models=list(snakemake.input.field),
    nofield_models=list(snakemake.input.nofield),
    heldout_db=snakemake.input.heldout,
    heldout_frames=snakemake.input.heldout_frames,
    dbs=list(snakemake.input.dbs),
    training=TrainingSettings.from_dict(snakemake.params.training),
    level=LevelSettings.from_dict(snakemake.params.level),
    scan_png=snakemake.output.scan,
)
