"""Rule glue for `explore`: one MLP/MM MD walker of an active-learning iteration."""

from mlmm.al import stages
from mlmm.runner import run_stage
from mlmm.settings import ALSettings, MetadynamicsSamplerSettings, SystemSettings

run_stage(
    snakemake,
    stages.explore,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    previous_selection=list(snakemake.input.previous),
    calibration=list(snakemake.input.calibration),
    iteration=int(snakemake.wildcards.it),
    walker=int(snakemake.wildcards.walker),
    al=ALSettings.from_rule_params(snakemake.params.al),
    system_settings=SystemSettings.from_dict(snakemake.params.system),
    frames_out=snakemake.output.frames,
    metadynamics=MetadynamicsSamplerSettings.from_dict(snakemake.params.metadynamics) if snakemake.params.metadynamics else None,
    probe=stages.StabilityProbe(**snakemake.params.probe) if snakemake.params.probe else None,
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
)
