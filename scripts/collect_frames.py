"""Rule glue for `collect_frames`: concatenate the Frames of all active samplers."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.sampling import stages  # noqa: E402

stages.collect_frames(
    inputs=list(snakemake.input.frames),
    frames_out=snakemake.output.frames,
    log_path=snakemake.log[0],
)
