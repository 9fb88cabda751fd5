"""Rule glue for `spectra`: absorption, emission, Stokes shift and the TDDFT reference check."""

from mlmm.excited import stages
from mlmm.runner import run_stage
from mlmm.settings import SpectraSettings

run_stage(
    snakemake,
    stages.excited_spectra,
    absorption_records=snakemake.input.absorption,
    predictions=snakemake.input.predictions,
    reference_records=snakemake.input.reference,
    spectra=SpectraSettings.from_dict(snakemake.params.spectra),
    absorption_csv=snakemake.output.absorption_csv,
    emission_csv=snakemake.output.emission_csv,
    absorption_png=snakemake.output.absorption_png,
    emission_png=snakemake.output.emission_png,
    summary_out=snakemake.output.summary,
    property_kind=snakemake.params.property_kind,
    property_metrics=snakemake.input.get("property_metrics"),
    dynamics_stats=snakemake.input.get("dynamics_stats"),
    selections=list(snakemake.input.get("selections", [])),
)
