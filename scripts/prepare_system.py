"""Rule glue for `prepare_system`: read the structure, select the QM region, write the first Frame."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm import stages  # noqa: E402

stages.prepare_system(
    structure=snakemake.input.structure,
    system_cfg=snakemake.params.system,
    frame_out=snakemake.output.frame,
    info_out=snakemake.output.info,
    log_path=snakemake.log[0],
)
