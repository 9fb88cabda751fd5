"""Rule glue for `sample_pca` (see mlmm.sampling.stages.sample_pca)."""

from mlmm.sampling import stages
from mlmm.runner import run_stage
from mlmm.settings import PCASettings

run_stage(
    snakemake,
    stages.sample_pca,
    record_out=snakemake.output.stats,
    trajectory_frames=snakemake.input.trajectory,
    sampler=PCASettings.from_dict(snakemake.params.sampler),
    frames_out=snakemake.output.frames,
    plot_out=snakemake.output.plot,
)
