"""Rule glue for `prepare_system`: read the structure, select the QM region, write the first Frame."""

from mlmm import stages
from mlmm.runner import run_stage

run_stage(
    snakemake,
    stages.prepare_system,
    structure=snakemake.input.structure,
    system_cfg=snakemake.params.system,
    frame_out=snakemake.output.frame,
    info_out=snakemake.output.info,
)
