"""Rule glue for `excited_dynamics`: bright-state MLP/MM MD replicas."""

from mlmm.excited import stages
from mlmm.runner import run_stage
from mlmm.settings import ExcitedDynamicsSettings, SystemSettings

run_stage(
    snakemake,
    stages.excited_dynamics,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    models=list(snakemake.input.models),
    ground_models=list(snakemake.input.ground_models),
    dyn=ExcitedDynamicsSettings.from_dict(snakemake.params.dynamics),
    system_settings=SystemSettings.from_dict(snakemake.params.system),
    frames_out=snakemake.output.frames,
    device=snakemake.config["training"]["device"],  # execution setting, not a params input: no rerun when it changes
)
