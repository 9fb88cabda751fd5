rule prepare_system:
    """Read the structure, select the QM region, assign MM charges and cut the first Frame."""
    input:
        structure=STRUCTURE,
        topology=TOPOLOGY,
        force_field=FORCE_FIELD_FILES,
    output:
        frame=f"{R}/system/initial_frame.extxyz",
        info=f"{R}/system/system.json",
    log:
        f"{LOGS}/system/prepare_system.log",
    conda:
        f"{ENVS}/sampling.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        system=config["system"],
    script:
        f"{SCRIPTS}/prepare_system.py"
