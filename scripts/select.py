"""Rule glue for `select`: trust-window + diversity selection and the convergence decision."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.al import stages  # noqa: E402

stages.select(
    frames=list(snakemake.input.frames),
    stats=list(snakemake.input.stats),
    previous_selection=list(snakemake.input.previous),
    evaluations=list(snakemake.input.evaluations),
    calibration=list(snakemake.input.calibration),
    iteration=int(snakemake.wildcards.it),
    al_cfg=snakemake.params.al,
    selected_out=snakemake.output.selected,
    selection_out=snakemake.output.selection,
    log_path=snakemake.log[0],
)
