rule sample_xtb_md:
    """GFN2-xTB/MM Langevin MD (mechanical embedding); a Frame every `stride` steps."""
    input:
        structure=STRUCTURE,
        topology=TOPOLOGY,
        force_field=FORCE_FIELD_FILES,
        system=rules.prepare_system.output.info,
    output:
        frames=f"{R}/sampling/xtb_md/frames.extxyz",
        stats=f"{R}/sampling/xtb_md/stats.json",
    log:
        f"{LOGS}/sampling/xtb_md.log",
    benchmark:
        f"{R}/benchmarks/sampling/xtb_md.tsv"
    conda:
        f"{ENVS}/sampling.yaml"
    threads: config["threads"]["sampling"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        system=config["system"],
        sampler=config["sampling"]["xtb_md"],
    script:
        f"{SCRIPTS}/sample_xtb_md.py"


rule sample_metadynamics:
    """Well-tempered PLUMED metadynamics on xTB/MM (CVs/bias in PLUMED syntax); HILLS, COLVAR, FES."""
    input:
        structure=STRUCTURE,
        topology=TOPOLOGY,
        force_field=FORCE_FIELD_FILES,
        system=rules.prepare_system.output.info,
    output:
        frames=f"{R}/sampling/metadynamics/frames.extxyz",
        stats=f"{R}/sampling/metadynamics/stats.json",
        hills=f"{R}/sampling/metadynamics/HILLS",
        colvar=f"{R}/sampling/metadynamics/COLVAR",
        fes=f"{R}/sampling/metadynamics/fes.dat",
        plot=report(
            f"{R}/sampling/metadynamics/fes.png",
            caption="../report/sampling_metadynamics.rst",
            category="Sampling",
        ),
    log:
        f"{LOGS}/sampling/metadynamics.log",
    benchmark:
        f"{R}/benchmarks/sampling/metadynamics.tsv"
    conda:
        f"{ENVS}/sampling.yaml"
    threads: config["threads"]["sampling"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        system=config["system"],
        sampler=config["sampling"]["metadynamics"],
    script:
        f"{SCRIPTS}/sample_metadynamics.py"


rule sample_normal_modes:
    """Normal-mode displacements (GFN2-xTB Hessian) at T, re-embedded in xtb_md environment snapshots."""
    input:
        structure=STRUCTURE,
        topology=TOPOLOGY,
        force_field=FORCE_FIELD_FILES,
        environment=rules.sample_xtb_md.output.frames,
    output:
        frames=f"{R}/sampling/normal_modes/frames.extxyz",
        stats=f"{R}/sampling/normal_modes/stats.json",
        plot=report(
            f"{R}/sampling/normal_modes/energies.png",
            caption="../report/sampling_normal_modes.rst",
            category="Sampling",
        ),
    log:
        f"{LOGS}/sampling/normal_modes.log",
    benchmark:
        f"{R}/benchmarks/sampling/normal_modes.tsv"
    conda:
        f"{ENVS}/sampling.yaml"
    threads: config["threads"]["sampling"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        system=config["system"],
        sampler=config["sampling"]["normal_modes"],
    script:
        f"{SCRIPTS}/sample_normal_modes.py"


rule sample_wigner:
    """Harmonic Wigner positions and momenta at T (quantum), re-embedded in xtb_md environment snapshots."""
    input:
        structure=STRUCTURE,
        topology=TOPOLOGY,
        force_field=FORCE_FIELD_FILES,
        environment=rules.sample_xtb_md.output.frames,
    output:
        frames=f"{R}/sampling/wigner/frames.extxyz",
        stats=f"{R}/sampling/wigner/stats.json",
        plot=report(
            f"{R}/sampling/wigner/energies.png",
            caption="../report/sampling_wigner.rst",
            category="Sampling",
        ),
    log:
        f"{LOGS}/sampling/wigner.log",
    benchmark:
        f"{R}/benchmarks/sampling/wigner.tsv"
    conda:
        f"{ENVS}/sampling.yaml"
    threads: config["threads"]["sampling"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        system=config["system"],
        sampler=config["sampling"]["wigner"],
    script:
        f"{SCRIPTS}/sample_wigner.py"


rule sample_pca:
    """New QM geometries along the leading principal components of a sampler's trajectory."""
    input:
        trajectory=f"{R}/sampling/{config['sampling']['pca']['trajectory']}/frames.extxyz",
    output:
        frames=f"{R}/sampling/pca/frames.extxyz",
        stats=f"{R}/sampling/pca/stats.json",
        plot=report(
            f"{R}/sampling/pca/projection.png",
            caption="../report/sampling_pca.rst",
            category="Sampling",
        ),
    log:
        f"{LOGS}/sampling/pca.log",
    conda:
        f"{ENVS}/sampling.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        sampler=config["sampling"]["pca"],
    script:
        f"{SCRIPTS}/sample_pca.py"


rule sample_adaptive:
    """Short xTB/MM runs restarted from the least-visited CV bins until coverage stops growing."""
    input:
        structure=STRUCTURE,
        topology=TOPOLOGY,
        force_field=FORCE_FIELD_FILES,
        system=rules.prepare_system.output.info,
    output:
        frames=f"{R}/sampling/adaptive/frames.extxyz",
        stats=f"{R}/sampling/adaptive/stats.json",
        plot=report(
            f"{R}/sampling/adaptive/coverage.png",
            caption="../report/sampling_adaptive.rst",
            category="Sampling",
        ),
    log:
        f"{LOGS}/sampling/adaptive.log",
    benchmark:
        f"{R}/benchmarks/sampling/adaptive.tsv"
    conda:
        f"{ENVS}/sampling.yaml"
    threads: config["threads"]["sampling"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        system=config["system"],
        sampler=config["sampling"]["adaptive"],
    script:
        f"{SCRIPTS}/sample_adaptive.py"


rule collect_samples:
    """Concatenate the Frames of all active samplers into the iteration-0 dataset."""
    input:
        frames=expand(
            f"{R}/sampling/{{sampler}}/frames.extxyz", sampler=ACTIVE_SAMPLERS
        ),
    output:
        frames=f"{R}/sampling/frames.extxyz",
    log:
        f"{LOGS}/sampling/collect_samples.log",
    conda:
        f"{ENVS}/sampling.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        f"{SCRIPTS}/collect_frames.py"


rule sampling_summary:
    """Frames and wall time of every active sampler (a section of results/summary.json)."""
    input:
        stats=expand(f"{R}/sampling/{{sampler}}/stats.json", sampler=ACTIVE_SAMPLERS),
    output:
        summary=f"{R}/sampling/summary.json",
    log:
        f"{LOGS}/sampling/summary.log",
    conda:
        f"{ENVS}/sampling.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        f"{SCRIPTS}/sample_summary.py"


SUMMARY_EXTRAS["sampling"] = rules.sampling_summary.output.summary
