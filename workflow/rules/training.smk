wildcard_constraints:
    labelset=r"labels/it\d+|test_set",


rule delta_labels:
    """Δ-learning targets: PySCF reference minus the GFN2-xTB (point-charge embedding) baseline."""
    input:
        f"{R}/{{labelset}}/labels.db",
    output:
        db=f"{R}/{{labelset}}/delta_{{baseline}}.db",
        stats=f"{R}/{{labelset}}/delta_{{baseline}}.json",
    log:
        f"{LOGS}/training/delta/{{labelset}}_{{baseline}}.log",
    benchmark:
        f"{R}/benchmarks/training/delta_{{labelset}}_{{baseline}}.tsv"
    conda:
        f"{ENVS}/training.yaml"
    threads: config["threads"]["labeling"]
    resources:
        mem_mb=2000,
        runtime=60,
    script:
        f"{SCRIPTS}/delta_labels.py"


rule train_member:
    """One ensemble member on all labels up to this iteration (own seed and train/val split)."""
    input:
        dbs=lambda wc: training_dbs_up_to("ground", int(wc.it)),
        selection=lambda wc: selection_of("ground", int(wc.it)),
        previous=lambda wc: previous_member("ground", int(wc.it), wc.member),
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
        mem_mb=16000,
        runtime=720,
    params:
        training=training_settings("ground"),
        logdir=lambda wc: f"{LOGS}/training/it{wc.it}/member{wc.member}",
    script:
        f"{SCRIPTS}/train_member.py"


rule evaluate_ensemble:
    """Ensemble and per-member errors on the fixed test set (the same frames every iteration)."""
    input:
        models=lambda wc: member_models("ground", int(wc.it)),
        test_db=TEST_DB,
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


rule calibrate:
    """σ vs true max force error on the fixed test set: Spearman ρ and the σ calibration."""
    input:
        models=lambda wc: member_models("ground", int(wc.it)),
        test_db=TEST_DB,
    output:
        f"{R}/models/it{{it}}/calibration.json",
    log:
        f"{LOGS}/training/it{{it}}/calibrate.log",
    conda:
        f"{ENVS}/training.yaml"
    threads: config["threads"]["training"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        training=config["training"],
    script:
        f"{SCRIPTS}/calibrate.py"


rule training_plots:
    """Learning curves, parity plots (energy, QM and MM forces) and σ calibration for the report."""
    input:
        metrics=[f"{R}/models/it{N_ITER}/member{m}.json" for m in members("ground")],
        models=member_models("ground", N_ITER),
        test_db=TEST_DB,
        calibrations=[f"{R}/models/it{i}/calibration.json" for i in ITERATIONS],
    output:
        learning=report(
            f"{R}/plots/training_learning_curves.png",
            caption="../report/training_learning_curves.rst",
            category="Training",
        ),
        parity=report(
            f"{R}/plots/training_parity.png",
            caption="../report/training_parity.rst",
            category="Training",
        ),
        calibration=report(
            f"{R}/plots/training_calibration.png",
            caption="../report/training_calibration.rst",
            category="Training",
        ),
        index=f"{R}/plots/training_plots.json",
    log:
        f"{LOGS}/training/plots.log",
    conda:
        f"{ENVS}/training.yaml"
    threads: config["threads"]["training"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        training=config["training"],
    script:
        f"{SCRIPTS}/training_plots.py"


use rule train_member as train_member_nofield with:
    """Ablation member: same data, settings and seed as the final member, but no MM field input."""
    input:
        dbs=training_dbs_up_to("ground", N_ITER),
        selection=[],
        previous=[],
    output:
        model=f"{R}/ablation/nofield/it{{it}}/member{{member}}.pt",
        metrics=f"{R}/ablation/nofield/it{{it}}/member{{member}}.json",
    log:
        f"{LOGS}/ablation/nofield_it{{it}}_member{{member}}.log",
    benchmark:
        f"{R}/benchmarks/ablation/nofield_it{{it}}_member{{member}}.tsv"
    params:
        training={
            **training_settings("ground"),
            "use_field": False,
            "warm_start": False,
        },
        logdir=lambda wc: f"{LOGS}/ablation/nofield_it{wc.it}_member{wc.member}",


rule field_ablation:
    """Errors on the fixed test set and environment scan, with and without the field input."""
    input:
        field=member_models("ground", N_ITER),
        nofield=[
            f"{R}/ablation/nofield/it{N_ITER}/member{m}.pt" for m in members("ground")
        ],
        test_db=TEST_DB,
        test_frames=rules.test_set_frames.output.frames,
    output:
        json=f"{R}/ablation/field_ablation.json",
        scan=report(
            f"{R}/plots/environment_scan.png",
            caption="../report/training_environment_scan.rst",
            category="Training",
        ),
    log:
        f"{LOGS}/ablation/field_ablation.log",
    conda:
        f"{ENVS}/labeling.yaml"
    threads: config["threads"]["training"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        training=config["training"],
        level=config["labeling"]["level"],
    script:
        f"{SCRIPTS}/field_ablation.py"


rule semiempirical_comparison:
    """GFN2-xTB/MM and the final MLP/MM against the reference on the fixed test set (errors, cost)."""
    input:
        models=member_models("ground", N_ITER),
        test_db=f"{R}/test_set/labels.db",
    output:
        f"{R}/models/semiempirical_comparison.json",
    log:
        f"{LOGS}/training/semiempirical_comparison.log",
    conda:
        f"{ENVS}/training.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        training=config["training"],
    script:
        f"{SCRIPTS}/semiempirical_comparison.py"


SUMMARY_EXTRAS["semiempirical_comparison"] = rules.semiempirical_comparison.output[0]
SUMMARY_EXTRAS["calibration"] = f"{R}/models/it{N_ITER}/calibration.json"
SUMMARY_EXTRAS["training_plots"] = rules.training_plots.output.index
if ABLATION["activate"]:
    SUMMARY_EXTRAS["field_ablation"] = rules.field_ablation.output.json
