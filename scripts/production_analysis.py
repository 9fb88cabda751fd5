"""Rule glue for `production_analysis`: RDF, CVs, σ(t) and NVE energy of the production runs."""

from mlmm.analysis import production
from mlmm.runner import run_stage
from mlmm.settings import ProductionSettings, SystemSettings

run_stage(
    snakemake,
    production.analyse,
    structure=snakemake.input.structure,
    final_stats=list(snakemake.input.final),
    initial_stats=list(snakemake.input.initial),
    nve_stats=list(snakemake.input.nve),
    production=ProductionSettings.from_dict(snakemake.params.production),
    system=SystemSettings.from_dict(snakemake.params.system),
    analysis_out=snakemake.output.analysis,
    rdf_png=snakemake.output.rdf,
    sigma_png=snakemake.output.sigma,
    energy_png=snakemake.output.energy,
    cvs_png=snakemake.output.cvs,
)
