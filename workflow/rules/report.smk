"""Figures and tables for `snakemake --report`: the overview of the active-learning run and production."""


rule report_overview:
    """σ histograms of the AL walkers per iteration, the AL table and production σ(t)/E(t)."""
    input:
        walker_stats=[
            f"{R}/al/it{it}/walker{w}.json" for it in ITERATIONS[1:] for w in WALKERS
        ],
        label_reports=[f"{R}/labels/it{i}/report.json" for i in ITERATIONS],
        evaluations=[f"{R}/models/it{i}/ensemble.json" for i in ITERATIONS],
        selections=[f"{R}/al/it{i}/selection.json" for i in ITERATIONS[1:]],
        production_sigma=rules.production.output.sigma,
    output:
        sigma=report(
            f"{R}/report/al_sigma_histograms.png",
            caption="../report/overview_sigma.rst",
            category="Active learning",
        ),
        table=report(
            f"{R}/report/al_table.csv",
            caption="../report/overview_al_table.rst",
            category="Active learning",
        ),
        production=report(
            f"{R}/report/production_sigma.png",
            caption="../report/overview_production.rst",
            category="Production",
        ),
        json=f"{R}/report/overview.json",
    log:
        f"{LOGS}/report/overview.log",
    conda:
        f"{ENVS}/md.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        walkers=WALKERS,
        al=config["al"],
        production=config["production"],
    script:
        f"{SCRIPTS}/report_overview.py"


SUMMARY_EXTRAS["report"] = rules.report_overview.output.json
