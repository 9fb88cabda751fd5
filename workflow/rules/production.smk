rule production:
    """NVT MLP/MM MD replica: E_ML(QM | MM charges) + the force field (MM–MM, QM–MM Lennard-Jones)."""
    input:
        structure=STRUCTURE,
        topology=TOPOLOGY,
        force_field=FORCE_FIELD_FILES,
        models=production_models,
    output:
        trajectory=f"{PROD}/{{model}}/replica{{replica}}/trajectory.dcd",
        topology=f"{PROD}/{{model}}/replica{{replica}}/topology.pdb",
        timeseries=f"{PROD}/{{model}}/replica{{replica}}/timeseries.csv",
        handback=f"{PROD}/{{model}}/replica{{replica}}/handback.extxyz",
        stats=f"{PROD}/{{model}}/replica{{replica}}/stats.json",
    log:
        f"{LOGS}/production/{{model}}/replica{{replica}}.log",
    benchmark:
        f"{R}/benchmarks/production/{{model}}_replica{{replica}}.tsv"
    conda:
        f"{ENVS}/md.yaml"
    threads: config["threads"]["md"]
    resources:
        mem_mb=4000,
        runtime=1440,
    params:
        production=config["production"],
        system=config["system"],
    script:
        f"{SCRIPTS}/production.py"


rule production_nve:
    """NVE check with the final ensemble: total-energy drift per atom per ps."""
    input:
        structure=STRUCTURE,
        topology=TOPOLOGY,
        force_field=FORCE_FIELD_FILES,
        models=member_models("ground", N_ITER),
    output:
        timeseries=f"{PROD}/nve/timeseries.csv",
        stats=f"{PROD}/nve/stats.json",
    log:
        f"{LOGS}/production/nve.log",
    benchmark:
        f"{R}/benchmarks/production/nve.tsv"
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
        f"{SCRIPTS}/production_nve.py"


rule production_stability:
    """Time to the first σ breach and σ statistics: final vs iteration-0 ensemble."""
    input:
        final=[f"{d}/stats.json" for d in production_replicas("final")],
        initial=(
            [f"{d}/stats.json" for d in production_replicas("initial")]
            if "initial" in PRODUCTION_MODELS
            else []
        ),
    output:
        f"{PROD}/stability.json",
    log:
        f"{LOGS}/production/stability.log",
    conda:
        f"{ENVS}/md.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        f"{SCRIPTS}/production_stability.py"


rule production_analysis:
    """MDAnalysis: solvent RDF, CV time series and histograms, σ(t), NVE energy; plots."""
    input:
        structure=STRUCTURE,
        final=[f"{d}/stats.json" for d in production_replicas("final")],
        initial=(
            [f"{d}/stats.json" for d in production_replicas("initial")]
            if "initial" in PRODUCTION_MODELS
            else []
        ),
        nve=[f"{PROD}/nve/stats.json"] if config["production"]["nve_steps"] else [],
    output:
        analysis=f"{PROD}/analysis.json",
        rdf=report(
            f"{PROD}/rdf.png",
            caption="../report/production_rdf.rst",
            category="Production",
        ),
        sigma=report(
            f"{PROD}/sigma.png",
            caption="../report/production_sigma.rst",
            category="Production",
        ),
        energy=report(
            f"{PROD}/energy.png",
            caption="../report/production_energy.rst",
            category="Production",
        ),
        cvs=report(
            f"{PROD}/cvs.png",
            caption="../report/production_cvs.rst",
            category="Production",
        ),
    log:
        f"{LOGS}/production/analysis.log",
    conda:
        f"{ENVS}/md.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        production=config["production"],
        system=config["system"],
    script:
        f"{SCRIPTS}/production_analysis.py"


rule collect_handback:
    """Frames the final ensemble was unsure about in production (sigma_action: collect)."""
    input:
        frames=[f"{d}/handback.extxyz" for d in production_replicas("final")],
    output:
        frames=f"{PROD}/handback.extxyz",
    log:
        f"{LOGS}/production/collect_handback.log",
    conda:
        f"{ENVS}/md.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        f"{SCRIPTS}/collect_frames.py"


rule label_handback:
    """PySCF QM/MM labels of the handed-back production frames (one job, resumable)."""
    input:
        frames=rules.collect_handback.output.frames,
    output:
        db=f"{R}/labels/handback/labels.db",
        report=f"{R}/labels/handback/report.json",
    log:
        f"{LOGS}/labeling/handback.log",
    benchmark:
        f"{R}/benchmarks/labeling/handback.tsv"
    conda:
        f"{ENVS}/labeling.yaml"
    threads: config["threads"]["labeling"]
    resources:
        mem_mb=8000,
        runtime=480,
    params:
        level=config["labeling"]["level"],
        chunk_size=10**9,
    script:
        f"{SCRIPTS}/label_handback.py"


SUMMARY_EXTRAS["production_stability"] = rules.production_stability.output[0]
SUMMARY_EXTRAS["production"] = rules.production_analysis.output.analysis
if config["production"]["sigma_action"] == "collect":
    SUMMARY_EXTRAS["production_handback_labels"] = rules.label_handback.output.report


rule production_metadynamics:
    """MLP/MM well-tempered metaD replica (PLUMED) with the final ensemble."""
    input:
        structure=STRUCTURE,
        topology=TOPOLOGY,
        force_field=FORCE_FIELD_FILES,
        models=member_models("ground", N_ITER),
    output:
        hills=f"{PROD}/metadynamics/replica{{replica}}/HILLS",
        colvar=f"{PROD}/metadynamics/replica{{replica}}/COLVAR",
        timeseries=f"{PROD}/metadynamics/replica{{replica}}/timeseries.csv",
        stats=f"{PROD}/metadynamics/replica{{replica}}/stats.json",
    log:
        f"{LOGS}/production/metadynamics/replica{{replica}}.log",
    benchmark:
        f"{R}/benchmarks/production/metadynamics_replica{{replica}}.tsv"
    conda:
        f"{ENVS}/md.yaml"
    threads: config["threads"]["md"]
    resources:
        mem_mb=4000,
        runtime=720,
    params:
        production=config["production"],
        system=config["system"],
        out_dir=lambda wc: f"{PROD}/metadynamics/replica{wc.replica}",
    script:
        f"{SCRIPTS}/production_metadynamics.py"


rule metadynamics_fes:
    """Free-energy profile along the metaD CV: replica mean and standard error (sum_hills)."""
    input:
        hills=expand(
            f"{PROD}/metadynamics/replica{{replica}}/HILLS",
            replica=METAD_REPLICAS,
        ),
        stats=expand(
            f"{PROD}/metadynamics/replica{{replica}}/stats.json",
            replica=METAD_REPLICAS,
        ),
    output:
        csv=f"{PROD}/metadynamics/fes.csv",
        png=report(
            f"{PROD}/metadynamics/fes.png",
            caption="../report/production_fes.rst",
            category="Production",
        ),
        json=f"{PROD}/metadynamics/fes.json",
    log:
        f"{LOGS}/production/metadynamics/fes.log",
    conda:
        f"{ENVS}/md.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        bins=config["production"]["metadynamics"]["bins"],
    script:
        f"{SCRIPTS}/metadynamics_fes.py"


if config["production"]["metadynamics"]["activate"]:
    SUMMARY_EXTRAS["metadynamics"] = rules.metadynamics_fes.output.json
