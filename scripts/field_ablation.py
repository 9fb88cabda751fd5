"""Rule glue for `field_ablation`: test-set errors and environment scan with and without the MM field input."""

from mlmm.model import stages
from mlmm.runner import run_stage
from mlmm.settings import LevelSettings, TrainingSettings

run_stage(
    snakemake,
    stages.field_ablation,
    record_out=snakemake.output.json,
    field_models=list(snakemake.input.field),
    nofield_models=list(snakemake.input.nofield),
    test_db=snakemake.input.test_db,
    test_frames=snakemake.input.test_frames,
    training=TrainingSettings.from_dict(snakemake.params.training),
    level=LevelSettings.from_dict(snakemake.params.level),
    scan_png=snakemake.output.scan,
)
