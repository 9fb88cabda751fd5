"""Rule glue for `excited_predict`: property-model ΔE and f on the excited-state trajectory."""

from mlmm.excited import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.predict_properties,
    record_out=snakemake.output[0],
    frames_path=snakemake.input.frames,
    model_path=snakemake.input.model,
    kind=snakemake.params.kind,
)
