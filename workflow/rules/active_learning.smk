rule explore:
    """MLP/MM MD walker with the previous iteration's ensemble; stops at a σ breach or blow-up."""
    input:
        structure=STRUCTURE,
        topology=TOPOLOGY,
        force_field=FORCE_FIELD_FILES,
        models=lambda wc: member_models("ground", int(wc.it) - 1),
        previous=lambda wc: selection_of("ground", int(wc.it) - 1),
        calibration=lambda wc: calibration_of("ground", int(wc.it) - 1),
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
        runtime=240,
    params:
        al=al_params("ground"),
        system=config["system"],
        # the PLUMED input of the walkers along the CVs (only a rerun trigger when they exist)
        metadynamics=(
            config["sampling"]["metadynamics"]
            if config["al"]["metadynamics_walkers"]
            else {}
        ),
        probe=probe_conditions(),
    script:
        f"{SCRIPTS}/explore.py"


rule select:
    """Trust window on σ, then farthest-point diversity, capped; decides convergence (σ, breaches, validation)."""
    input:
        frames=lambda wc: walker_outputs("ground", wc.it, "extxyz"),
        stats=lambda wc: walker_outputs("ground", wc.it, "json"),
        previous=lambda wc: selection_of("ground", int(wc.it) - 1),
        evaluations=lambda wc: evaluations_before("ground", int(wc.it)),
        calibration=lambda wc: calibration_of("ground", int(wc.it) - 1),
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
        al=al_params("ground"),
    script:
        f"{SCRIPTS}/select.py"
