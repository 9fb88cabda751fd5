"""Rule glue for `sample_xtb_md`: GFN2-xTB/TIP3P Langevin sampling."""

from mlmm.sampling import stages
from mlmm.runner import run_stage
from mlmm.settings import SystemSettings, XtbMDSettings

run_stage(
    snakemake,
    stages.sample_xtb_md,
    record_out=snakemake.output.stats,
    structure=snakemake.input.structure,
    system=SystemSettings.from_dict(snakemake.params.system),
    sampler=XtbMDSettings.from_dict(snakemake.params.sampler),
    frames_out=snakemake.output.frames,
)
