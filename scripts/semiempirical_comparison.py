"""Rule glue for `semiempirical_comparison`: GFN2-xTB/MM and MLP/MM against the fixed test set."""

from mlmm.model.comparison import compare_with_semiempirical
from mlmm.runner import run_stage
from mlmm.settings import TrainingSettings

run_stage(
    snakemake,
    compare_with_semiempirical,
    record_out=snakemake.output[0],
    models=list(snakemake.input.models),
    test_db=snakemake.input.test_db,
    training=TrainingSettings.from_dict(snakemake.params.training),
)
