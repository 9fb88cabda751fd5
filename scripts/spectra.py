"""Rule glue for `spectra`: absorption, emission, Stokes shift and the TDDFT reference check."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.excited import stages  # noqa: E402

stages.excited_spectra(
    absorption_records=snakemake.input.absorption,
    predictions=snakemake.input.predictions,
    reference_records=snakemake.input.reference,
    cfg=snakemake.params.spectra,
    absorption_csv=snakemake.output.absorption_csv,
    emission_csv=snakemake.output.emission_csv,
    absorption_png=snakemake.output.absorption_png,
    emission_png=snakemake.output.emission_png,
    summary_out=snakemake.output.summary,
    log_path=snakemake.log[0],
    property_metrics=snakemake.input.get("property_metrics"),
    dynamics_stats=snakemake.input.get("dynamics_stats"),
    selections=list(snakemake.input.get("selections", [])),
)
