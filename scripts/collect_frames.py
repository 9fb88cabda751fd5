"""Rule glue for `collect_frames`: concatenate the Frames of all active samplers."""

from mlmm.sampling import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.collect_frames,
    inputs=list(snakemake.input.frames),
    frames_out=snakemake.output.frames,
)
