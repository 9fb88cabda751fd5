rule explore:
    """MLP/MM MD walker with the previous iteration's ensemble; stops at a σ breach or blow-up."""
    input:
        structure=config["system"]["structure"],
        models=lambda wc: member_models(int(wc.it) - 1),
        previous=lambda wc: selection_of(int(wc.it) - 1),
        calibration=lambda wc: calibration_of(int(wc.it) - 1),
    output:
        frames=f"{R}/al/it{{it}}/walker{{walker}}.extxyz",
        stats=f"{R}/al/it{{it}}/walker{{walker}}.json",
    log:
        f"{LOGS}/al/it{{it}}/walker{{walker}}.log",
    benchmark:
        f"{R}/benchmarks/al/it{{it}}_walker{{walker}}.tsv"
    conda:
        f"{ENVS}/md.yaml"
    threads: config["threads"]["md"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        al=config["al"],
        system=config["system"],
    script:
        f"{SCRIPTS}/explore.py"


rule select:
    """Trust window on σ, then farthest-point diversity, capped; decides convergence (σ, breaches, validation)."""
    input:
        frames=expand(f"{R}/al/it{{{{it}}}}/walker{{walker}}.extxyz", walker=WALKERS),
        stats=expand(f"{R}/al/it{{{{it}}}}/walker{{walker}}.json", walker=WALKERS),
        previous=lambda wc: selection_of(int(wc.it) - 1),
        evaluations=lambda wc: evaluations_before(int(wc.it)),
        calibration=lambda wc: calibration_of(int(wc.it) - 1),
    output:
        selected=f"{R}/al/it{{it}}/selected.extxyz",
        selection=f"{R}/al/it{{it}}/selection.json",
    log:
        f"{LOGS}/al/it{{it}}/select.log",
    conda:
        f"{ENVS}/md.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        al=config["al"],
    script:
        f"{SCRIPTS}/select.py"
