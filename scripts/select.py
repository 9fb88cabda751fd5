"""Rule glue for `select`: trust-window + diversity selection and the convergence decision."""

from mlmm.al import stages
from mlmm.runner import run_stage
from mlmm.settings import ALSettings

run_stage(
    snakemake,
    stages.select,
    record_out=snakemake.output.selection,
    frames=list(snakemake.input.frames),
    stats=list(snakemake.input.stats),
    previous_selection=list(snakemake.input.previous),
    evaluations=list(snakemake.input.evaluations),
    calibration=list(snakemake.input.calibration),
    iteration=int(snakemake.wildcards.it),
    al=ALSettings.from_rule_params(snakemake.params.al),
    selected_out=snakemake.output.selected,
)
