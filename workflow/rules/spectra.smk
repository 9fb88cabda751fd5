"""Excited states (active with `excited.activate: true`): TDA/TDDFT labels of the ground-state
ensemble, bright-state ensemble and property model, excited-state MLP/MM MD, absorption and
emission spectra, and the TDDFT reference check on trajectory frames."""

if config["excited"]["activate"]:

    rule excited_state_reference:
        """TDA/TDDFT of the input structure: its bright state is the one state reference every labelling stage identifies the bright state against."""
        input:
            frame=rules.prepare_system.output.frame,
        output:
            f"{EXC}/state_reference.json",
        log:
            f"{LOGS}/excited/state_reference.log",
        conda:
            f"{ENVS}/labeling.yaml"
        resources:
            mem_mb=4000,
            runtime=60,
        params:
            level=config["excited"]["level"],
            td=config["excited"]["td"],
        script:
            f"{SCRIPTS}/excited_state_reference.py"

    rule excited_labels:
        """TDA/TDDFT in the MM charges on the ground-state ensemble: all states (absorption) and the bright state's energy and forces (QM atoms and MM charges)."""
        input:
            frames=f"{R}/sampling/frames.extxyz",
            state_reference=rules.excited_state_reference.output[0],
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
            samplers=config["excited"]["absorption_samplers"],
            level=config["excited"]["level"],
            td=config["excited"]["td"],
        script:
            f"{SCRIPTS}/excited_label.py"

    use rule train_member as excited_train_member with:
        """Bright-state ensemble member of iteration `it`: the ordinary field-aware SchNet training on all bright-state labels so far."""
        input:
            dbs=lambda wc: training_dbs_up_to("bright", int(wc.it)),
            selection=lambda wc: selection_of("bright", int(wc.it)),
            previous=lambda wc: previous_member("bright", int(wc.it), wc.member),
        output:
            model=f"{EXC}/models/it{{it}}/member{{member}}.pt",
            metrics=f"{EXC}/models/it{{it}}/member{{member}}.json",
        log:
            f"{LOGS}/excited/training/it{{it}}/member{{member}}.log",
        benchmark:
            f"{R}/benchmarks/excited/train_it{{it}}_member{{member}}.tsv"
        params:
            training=training_settings("bright"),
            logdir=lambda wc: f"{LOGS}/excited/training/it{wc.it}/member{wc.member}",

    use rule explore as excited_explore with:
        """Active learning on the bright-state surface: MLP/MM MD walker with the previous bright-state ensemble."""
        input:
            structure=STRUCTURE,
            topology=TOPOLOGY,
            force_field=FORCE_FIELD_FILES,
            models=lambda wc: member_models("bright", int(wc.it) - 1),
            previous=lambda wc: selection_of("bright", int(wc.it) - 1),
            calibration=lambda wc: calibration_of("bright", int(wc.it) - 1),
        output:
            frames=f"{EXC}/al/it{{it}}/walker{{walker}}.extxyz",
            stats=f"{EXC}/al/it{{it}}/walker{{walker}}.json",
        log:
            f"{LOGS}/excited/al/it{{it}}/walker{{walker}}.log",
        benchmark:
            f"{R}/benchmarks/excited/explore_it{{it}}_walker{{walker}}.tsv"
        params:
            al=al_params("bright"),
            probe={},  # the stability probe runs on the ground-state loop only

    use rule select as excited_select with:
        """Trust window on the bright-state ensemble σ, diversity, cap; decides convergence of the bright-state loop."""
        input:
            frames=lambda wc: walker_outputs("bright", wc.it, "extxyz"),
            stats=lambda wc: walker_outputs("bright", wc.it, "json"),
            previous=lambda wc: selection_of("bright", int(wc.it) - 1),
            evaluations=lambda wc: evaluations_before("bright", int(wc.it)),
            calibration=lambda wc: calibration_of("bright", int(wc.it) - 1),
            property_model=lambda wc: property_model_of(int(wc.it) - 1),
        output:
            selected=f"{EXC}/al/it{{it}}/selected.extxyz",
            selection=f"{EXC}/al/it{{it}}/selection.json",
        log:
            f"{LOGS}/excited/al/it{{it}}/select.log",
        params:
            al=al_params("bright"),
            property_kind=config["excited"]["property_model"]["kind"],
            property_sigma=config["excited"]["al"]["property_sigma"],

    use rule excited_labels as excited_label_selected with:
        """TDA/TDDFT bright-state labels (energy, forces on QM atoms and MM charges) of the selected frames."""
        input:
            frames=f"{EXC}/al/it{{it}}/selected.extxyz",
            state_reference=rules.excited_state_reference.output[0],
        output:
            records=f"{EXC}/al/it{{it}}/records.json",
            db=f"{EXC}/al/it{{it}}/bright.db",
        log:
            f"{LOGS}/excited/al/it{{it}}/label.log",
        benchmark:
            f"{R}/benchmarks/excited/label_it{{it}}.tsv"
        params:
            n_frames=config["excited"]["al"]["max_selected"],
            samplers=None,  # the selected walker frames, whatever biased them

    rule excited_property_model:
        """Property model of the bright state's excitation energy and oscillator strength (kernel ridge or field-aware neural)."""
        input:
            dbs=label_dbs_up_to("bright", last_iteration("bright")),
            records=bright_records_up_to(last_iteration("bright")),
        output:
            model=f"{EXC}/property_model.{PROPERTY_MODEL_EXT}",
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

    use rule excited_property_model as excited_property_model_it with:
        """Property model on the bright labels up to iteration `it`: its committee σ of the excitation energy is a selection criterion of bright AL iteration `it` + 1."""
        input:
            dbs=lambda wc: label_dbs_up_to("bright", int(wc.it)),
            records=lambda wc: bright_records_up_to(int(wc.it)),
        output:
            model=f"{EXC}/al/it{{it}}/property_model.{PROPERTY_MODEL_EXT}",
            metrics=f"{EXC}/al/it{{it}}/property_model.json",
        log:
            f"{LOGS}/excited/al/it{{it}}/property_model.log",

    rule excited_dynamics:
        """Bright-state MLP/MM MD from independent ground-state states, Wigner samples or the structure (vertical excitation); relaxation discarded."""
        input:
            structure=STRUCTURE,
            topology=TOPOLOGY,
            force_field=FORCE_FIELD_FILES,
            models=member_models("bright", last_iteration("bright")),
            # each replica starts from its own ground-state run with the final ground-state ensemble
            ground_models=(
                member_models("ground", N_ITER)
                if config["excited"]["dynamics"]["initial"] == "ground_state_md"
                else []
            ),
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
        params:
            kind=config["excited"]["property_model"]["kind"],
        script:
            f"{SCRIPTS}/excited_predict.py"

    use rule excited_labels as excited_reference with:
        """TDA/TDDFT directly on a subset of the excited-state trajectory frames (reference check)."""
        input:
            frames=rules.excited_dynamics.output.frames,
            state_reference=rules.excited_state_reference.output[0],
        output:
            records=f"{EXC}/reference/records.json",
        log:
            f"{LOGS}/excited/reference.log",
        benchmark:
            f"{R}/benchmarks/excited/reference.tsv"
        params:
            n_frames=config["excited"]["reference"]["n_frames"],
            samplers=None,  # every trajectory frame (the emission check, not an absorption ensemble)

    rule spectra:
        """Absorption (nuclear ensemble), ML emission, Stokes shift; ML vs TDDFT emission on the same frames."""
        input:
            absorption=rules.excited_labels.output.records,
            predictions=rules.excited_predict.output[0],
            reference=rules.excited_reference.output.records,
            property_metrics=rules.excited_property_model.output.metrics,
            dynamics_stats=rules.excited_dynamics.output.stats,
            selections=[
                f"{EXC}/al/it{i}/selection.json"
                for i in range(1, last_iteration("bright") + 1)
            ],
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
            property_kind=config["excited"]["property_model"]["kind"],
        script:
            f"{SCRIPTS}/spectra.py"

    SUMMARY_EXTRAS["excited"] = rules.spectra.output.summary
