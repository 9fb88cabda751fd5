rule production:
    """MLP/MM MD with the final ensemble: E_ML(QM | MM charges) + TIP3P + QM–MM Lennard-Jones."""
    input:
        structure=config["system"]["structure"],
        models=member_models(N_ITER),
    output:
        trajectory=f"{R}/production/trajectory.extxyz",
        topology=f"{R}/production/topology.pdb",
        sigma=f"{R}/production/sigma.csv",
        stats=f"{R}/production/stats.json",
    log:
        f"{LOGS}/production/production.log",
    benchmark:
        f"{R}/benchmarks/production.tsv"
    conda:
        f"{ENVS}/md.yaml"
    threads: config["threads"]["md"]
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        production=config["production"],
        system=config["system"],
    script:
        f"{SCRIPTS}/production.py"
