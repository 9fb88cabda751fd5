"""Rule glue for `prepare_system`: read the structure, select the QM region, write the first Frame."""

from mlmm import stages
from mlmm.runner import run_stage
from mlmm.settings import SystemSettings

run_stage(
    snakemake,
    stages.prepare_system,
    record_out=snakemake.output.info,
    structure=snakemake.input.structure,
    system_settings=SystemSettings.from_dict(snakemake.params.system),
    frame_out=snakemake.output.frame,
)
