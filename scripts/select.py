"""Rule glue for `select`: trust-window + diversity selection and the convergence decision."""

from mlmm.al import stages
from mlmm.runner import run_stage
from mlmm.settings import ALSettings

# the bright loop's property model (one file, or none when excited.al.property_sigma is null)
PROPERTY_MODEL = snakemake.input.get("property_model", [])
PROPERTY_MODEL = [PROPERTY_MODEL] if isinstance(PROPERTY_MODEL, str) else list(PROPERTY_MODEL)

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
    property_model=(PROPERTY_MODEL[0] if PROPERTY_MODEL else None),
    property_kind=snakemake.params.get("property_kind"),
    property_sigma_ev=snakemake.params.get("property_sigma"),
)
