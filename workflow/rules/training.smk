rule train_member:
    """One ensemble member on all labels up to this iteration (own seed and train/val split)."""
    input:
        dbs=lambda wc: label_dbs_up_to(int(wc.it)),
        selection=lambda wc: selection_of(int(wc.it)),
        previous=lambda wc: (
            [f"{R}/models/it{int(wc.it) - 1}/member{wc.member}.pt"]
            if int(wc.it) >= 1
            else []
        ),
    output:
        model=f"{R}/models/it{{it}}/member{{member}}.pt",
        metrics=f"{R}/models/it{{it}}/member{{member}}.json",
    log:
        f"{LOGS}/training/it{{it}}/member{{member}}.log",
    benchmark:
        f"{R}/benchmarks/training/it{{it}}_member{{member}}.tsv"
    conda:
        f"{ENVS}/training.yaml"
    threads: config["threads"]["training"]
    resources:
        mem_mb=8000,
        runtime=720,
    params:
        training=config["training"],
        logdir=lambda wc: f"{LOGS}/training/it{wc.it}/member{wc.member}",
    script:
        f"{SCRIPTS}/train_member.py"


rule evaluate_ensemble:
    """Ensemble errors on the held-out test frames of all labels so far (never trained on)."""
    input:
        models=lambda wc: member_models(int(wc.it)),
        dbs=lambda wc: label_dbs_up_to(int(wc.it)),
    output:
        f"{R}/models/it{{it}}/ensemble.json",
    log:
        f"{LOGS}/training/it{{it}}/evaluate.log",
    conda:
        f"{ENVS}/training.yaml"
    threads: config["threads"]["training"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        training=config["training"],
    script:
        f"{SCRIPTS}/evaluate_ensemble.py"
