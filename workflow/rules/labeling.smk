rule label_chunk:
    """PySCF QM/MM (MM charges as point charges): energy and forces on QM atoms and MM sites."""
    input:
        frames=frames_to_label,
    output:
        db=f"{R}/labels/it{{it}}/chunk{{chunk}}.db",
        report=f"{R}/labels/it{{it}}/chunk{{chunk}}.json",
    log:
        f"{LOGS}/labeling/it{{it}}/chunk{{chunk}}.log",
    benchmark:
        f"{R}/benchmarks/labeling/it{{it}}_chunk{{chunk}}.tsv"
    conda:
        f"{ENVS}/labeling.yaml"
    threads: config["threads"]["labeling"]
    resources:
        mem_mb=8000,
        runtime=480,
    params:
        level=config["labeling"]["level"],
        chunk_size=config["labeling"]["chunk_size"],
    script:
        f"{SCRIPTS}/label_chunk.py"


rule merge_labels:
    """One schnetpack database per iteration; failed frames stay listed in the report (quarantine)."""
    input:
        dbs=lambda wc: expand(
            f"{R}/labels/it{wc.it}/chunk{{chunk}}.db", chunk=chunk_ids(int(wc.it))
        ),
        reports=lambda wc: expand(
            f"{R}/labels/it{wc.it}/chunk{{chunk}}.json", chunk=chunk_ids(int(wc.it))
        ),
    output:
        db=f"{R}/labels/it{{it}}/labels.db",
        report=f"{R}/labels/it{{it}}/report.json",
    log:
        f"{LOGS}/labeling/it{{it}}/merge.log",
    conda:
        f"{ENVS}/labeling.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        f"{SCRIPTS}/merge_labels.py"
