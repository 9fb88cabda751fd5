rule sample_xtb_md:
    """GFN2-xTB/TIP3P Langevin MD (mechanical embedding); a Frame every `stride` steps."""
    input:
        structure=config["system"]["structure"],
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
