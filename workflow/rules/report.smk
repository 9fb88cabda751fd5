"""Figures and tables for `snakemake --report`: the overview of the active-learning run."""


rule report_overview:
    """σ histograms of the AL walkers per iteration and the AL table (labels, errors, selection)."""
    input:
        walker_stats=[
            f"{R}/al/it{it}/walker{w}.json"
            for it in ITERATIONS[1:]
            for w in walkers("ground")
        ],
        label_reports=[f"{R}/labels/it{i}/report.json" for i in ITERATIONS],
        evaluations=[f"{R}/models/it{i}/ensemble.json" for i in ITERATIONS],
        selections=[f"{R}/al/it{i}/selection.json" for i in ITERATIONS[1:]],
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
        json=f"{R}/report/overview.json",
    log:
        f"{LOGS}/report/overview.log",
    conda:
        f"{ENVS}/md.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        walkers=walkers("ground"),
        al=config["al"],
    script:
        f"{SCRIPTS}/report_overview.py"


SUMMARY_EXTRAS["report"] = rules.report_overview.output.json
