"""Rule glue for `production_analysis`: RDF, CVs, σ(t) and NVE energy of the production runs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))
from mlmm.analysis import production  # noqa: E402

production.analyse(
    structure=snakemake.input.structure,
    final_stats=list(snakemake.input.final),
    initial_stats=list(snakemake.input.initial),
    nve_stats=list(snakemake.input.nve),
    production_cfg=snakemake.params.production,
    system_cfg=snakemake.params.system,
    analysis_out=snakemake.output.analysis,
    rdf_png=snakemake.output.rdf,
    sigma_png=snakemake.output.sigma,
    energy_png=snakemake.output.energy,
    cvs_png=snakemake.output.cvs,
    log_path=snakemake.log[0],
)
