"""Rule glue for `explore`: one MLP/MM MD walker of an active-learning iteration."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.al import stages  # noqa: E402

stages.explore(
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    previous_selection=list(snakemake.input.previous),
    calibration=list(snakemake.input.calibration),
    iteration=int(snakemake.wildcards.it),
    walker=int(snakemake.wildcards.walker),
    al_cfg=snakemake.params.al,
    system_cfg=snakemake.params.system,
    frames_out=snakemake.output.frames,
    stats_out=snakemake.output.stats,
    log_path=snakemake.log[0],
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
    threads=snakemake.threads,
)
