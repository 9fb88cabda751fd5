"""Excited states (active with `excited.activate: true`): TDA/TDDFT labels of the ground-state
ensemble, bright-state ensemble and property model, excited-state MLP/MM MD, absorption and
emission spectra, and the TDDFT reference check on trajectory frames."""

EXC = f"{R}/excited"
EXC_MEMBERS = list(range(config["excited"]["training"]["n_members"]))


if config["excited"]["activate"]:

    rule excited_labels:
        """TDA/TDDFT in the MM charges on the ground-state ensemble: all states (absorption) and the bright state's energy and forces (QM atoms and MM charges)."""
        input:
            frames=f"{R}/sampling/frames.extxyz",
        output:
            records=f"{EXC}/labels/records.json",
            db=f"{EXC}/labels/bright.db",
        log:
            f"{LOGS}/excited/labels.log",
        benchmark:
            f"{R}/benchmarks/excited/labels.tsv"
        conda:
            f"{ENVS}/labeling.yaml"
        threads: config["threads"]["labeling"]
        resources:
            mem_mb=8000,
            runtime=600,
        params:
            n_frames=config["excited"]["n_label_frames"],
            level=config["excited"]["level"],
            td=config["excited"]["td"],
        script:
            f"{SCRIPTS}/excited_label.py"

    rule excited_train_member:
        """Bright-state ensemble member: the ordinary field-aware SchNet training on the bright-state labels."""
        input:
            db=rules.excited_labels.output.db,
        output:
            model=f"{EXC}/models/member{{member}}.pt",
            metrics=f"{EXC}/models/member{{member}}.json",
        log:
            f"{LOGS}/excited/train_member{{member}}.log",
        benchmark:
            f"{R}/benchmarks/excited/train_member{{member}}.tsv"
        conda:
            f"{ENVS}/training.yaml"
        threads: config["threads"]["training"]
        resources:
            mem_mb=8000,
            runtime=720,
        params:
            training={
                **config["training"],
                **{
                    k: v
                    for k, v in config["excited"]["training"].items()
                    if k != "n_members"
                },
            },
            logdir=lambda wc: f"{LOGS}/excited/training/member{wc.member}",
        script:
            f"{SCRIPTS}/excited_train_member.py"

    rule excited_property_model:
        """Kernel-ridge model of the bright state's excitation energy and oscillator strength (geometry + MM potential)."""
        input:
            db=rules.excited_labels.output.db,
            records=rules.excited_labels.output.records,
        output:
            model=f"{EXC}/property_model.npz",
            metrics=f"{EXC}/property_model.json",
        log:
            f"{LOGS}/excited/property_model.log",
        conda:
            f"{ENVS}/training.yaml"
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            cfg=config["excited"]["property_model"],
        script:
            f"{SCRIPTS}/excited_property_model.py"

    rule excited_dynamics:
        """Bright-state MLP/MM MD from the ground-state structure (vertical excitation); relaxation discarded."""
        input:
            structure=config["system"]["structure"],
            models=expand(f"{EXC}/models/member{{member}}.pt", member=EXC_MEMBERS),
        output:
            frames=f"{EXC}/dynamics/frames.extxyz",
            stats=f"{EXC}/dynamics/stats.json",
        log:
            f"{LOGS}/excited/dynamics.log",
        benchmark:
            f"{R}/benchmarks/excited/dynamics.tsv"
        conda:
            f"{ENVS}/md.yaml"
        threads: config["threads"]["md"]
        resources:
            mem_mb=4000,
            runtime=240,
        params:
            dynamics=config["excited"]["dynamics"],
            system=config["system"],
        script:
            f"{SCRIPTS}/excited_dynamics.py"

    rule excited_predict:
        """Property-model excitation energy and oscillator strength on every excited-state trajectory frame."""
        input:
            frames=rules.excited_dynamics.output.frames,
            model=rules.excited_property_model.output.model,
        output:
            f"{EXC}/dynamics/predictions.json",
        log:
            f"{LOGS}/excited/predict.log",
        conda:
            f"{ENVS}/training.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            f"{SCRIPTS}/excited_predict.py"

    rule excited_reference:
        """TDA/TDDFT directly on a subset of the excited-state trajectory frames (reference check)."""
        input:
            frames=rules.excited_dynamics.output.frames,
        output:
            records=f"{EXC}/reference/records.json",
        log:
            f"{LOGS}/excited/reference.log",
        benchmark:
            f"{R}/benchmarks/excited/reference.tsv"
        conda:
            f"{ENVS}/labeling.yaml"
        threads: config["threads"]["labeling"]
        resources:
            mem_mb=8000,
            runtime=600,
        params:
            n_frames=config["excited"]["reference"]["n_frames"],
            level=config["excited"]["level"],
            td=config["excited"]["td"],
        script:
            f"{SCRIPTS}/excited_label.py"

    rule spectra:
        """Absorption (nuclear ensemble), ML emission, Stokes shift; ML vs TDDFT emission on the same frames."""
        input:
            absorption=rules.excited_labels.output.records,
            predictions=rules.excited_predict.output[0],
            reference=rules.excited_reference.output.records,
            property_metrics=rules.excited_property_model.output.metrics,
            dynamics_stats=rules.excited_dynamics.output.stats,
        output:
            absorption_csv=f"{EXC}/spectra/absorption.csv",
            emission_csv=f"{EXC}/spectra/emission.csv",
            absorption_png=report(
                f"{EXC}/spectra/absorption_emission.png",
                caption="../report/spectra_absorption.rst",
                category="Excited states",
            ),
            emission_png=report(
                f"{EXC}/spectra/emission_reference.png",
                caption="../report/spectra_reference.rst",
                category="Excited states",
            ),
            summary=f"{EXC}/spectra/summary.json",
        log:
            f"{LOGS}/excited/spectra.log",
        conda:
            f"{ENVS}/md.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            spectra=config["excited"]["spectra"],
        script:
            f"{SCRIPTS}/spectra.py"

    SUMMARY_EXTRAS["excited"] = rules.spectra.output.summary
