"""Rule glue for `report_overview`: σ histograms per AL iteration, AL table."""

from mlmm.report import overview
from mlmm.runner import run_stage
from mlmm.settings import ALSettings

n_walkers = len(snakemake.params.walkers)
stats = list(snakemake.input.walker_stats)
run_stage(
    snakemake,
    overview.overview,
    walker_stats=[stats[i : i + n_walkers] for i in range(0, len(stats), n_walkers)],
    label_reports=list(snakemake.input.label_reports),
    evaluations=list(snakemake.input.evaluations),
    selections=list(snakemake.input.selections),
    al=ALSettings.from_dict(snakemake.params.al),
    sigma_png=snakemake.output.sigma,
    table_csv=snakemake.output.table,
    json_out=snakemake.output.json,
)
