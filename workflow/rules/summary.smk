rule summary:
    """results/summary.json: where the final products are and the key figures of the run."""
    input:
        label_dbs=label_dbs_up_to("ground", N_ITER),
        label_reports=[f"{R}/labels/it{i}/report.json" for i in ITERATIONS],
        evaluations=[f"{R}/models/it{i}/ensemble.json" for i in ITERATIONS],
        selections=[f"{R}/al/it{i}/selection.json" for i in ITERATIONS[1:]],
        models=member_models("ground", N_ITER),
        extras=lambda wc: list(SUMMARY_EXTRAS.values()),
    output:
        f"{R}/summary.json",
    log:
        f"{LOGS}/summary.log",
    conda:
        f"{ENVS}/md.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        extra_keys=lambda wc: list(SUMMARY_EXTRAS),
    script:
        f"{SCRIPTS}/summary.py"
