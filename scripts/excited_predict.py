"""Rule glue for `excited_predict`: property-model ΔE and f on the excited-state trajectory."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.excited import stages  # noqa: E402

stages.predict_properties(
    frames_path=snakemake.input.frames,
    model_path=snakemake.input.model,
    out=snakemake.output[0],
    log_path=snakemake.log[0],
)
