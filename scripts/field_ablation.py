"""Rule glue for `field_ablation`: held-out errors and environment scan with and without the MM field input."""

from mlmm.model import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.field_ablation,
    field_models=list(snakemake.input.field),
    nofield_models=list(snakemake.input.nofield),
    heldout_db=snakemake.input.heldout,
    heldout_frames=snakemake.input.heldout_frames,
    dbs=list(snakemake.input.dbs),
    training_cfg=snakemake.params.training,
    level_cfg=snakemake.params.level,
    out=snakemake.output.json,
    scan_png=snakemake.output.scan,
)
