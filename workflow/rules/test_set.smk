# The run's fixed, independent test set (config test_set): frames of its own xTB/MM trajectories,
# labelled once, never trained on; every test error, the calibration and the convergence rule use it.
TEST_SET = config["test_set"]
TEST_TEMPERATURES = [
    f * config["production"]["temperature"] for f in TEST_SET["temperature_factors"]
]
TEST_METADYNAMICS = TEST_SET["metadynamics"] and bool(
    config["sampling"]["metadynamics"]["plumed"].strip()
)
TEST_TRAJECTORIES = [f"md{k}" for k in range(len(TEST_TEMPERATURES))] + (
    ["metadynamics"] if TEST_METADYNAMICS else []
)
TEST_N_FRAMES = TEST_SET["n_frames"] * len(TEST_TRAJECTORIES)
TEST_CHUNKS = list(range(math.ceil(TEST_N_FRAMES / config["labeling"]["chunk_size"])))
#: The DB the test errors are taken on (Δ corrections when the members learn them).
TEST_DB = training_db(f"{R}/test_set/labels.db")


wildcard_constraints:
    k=r"\d+",


use rule sample_xtb_md as test_set_md with:
    """Thermal xTB/MM trajectory k of the test set at temperature_factors[k] × production.temperature."""
    output:
        frames=f"{R}/test_set/md{{k}}/frames.extxyz",
        stats=f"{R}/test_set/md{{k}}/stats.json",
    log:
        f"{LOGS}/test_set/md{{k}}.log",
    benchmark:
        f"{R}/benchmarks/test_set/md{{k}}.tsv"
    params:
        system=config["system"],
        sampler=lambda wc: {
            **config["sampling"]["xtb_md"],
            "activate": True,
            "temperature": TEST_TEMPERATURES[int(wc.k)],
            "n_frames": TEST_SET["n_frames"],
            "seed": TEST_SET["seed"] + int(wc.k),
        },


use rule sample_metadynamics as test_set_metadynamics with:
    """Metadynamics trajectory of the test set (sampling.metadynamics's PLUMED input, own seed)."""
    output:
        frames=f"{R}/test_set/metadynamics/frames.extxyz",
        stats=f"{R}/test_set/metadynamics/stats.json",
        hills=f"{R}/test_set/metadynamics/HILLS",
        colvar=f"{R}/test_set/metadynamics/COLVAR",
        fes=f"{R}/test_set/metadynamics/fes.dat",
        plot=f"{R}/test_set/metadynamics/fes.png",
    log:
        f"{LOGS}/test_set/metadynamics.log",
    benchmark:
        f"{R}/benchmarks/test_set/metadynamics.tsv"
    params:
        system=config["system"],
        sampler={
            **config["sampling"]["metadynamics"],
            "activate": True,
            "temperature": config["production"]["temperature"],
            "n_frames": TEST_SET["n_frames"],
            "seed": TEST_SET["seed"] + 10000,
        },


use rule collect_samples as test_set_frames with:
    """All test-set Frames in one file (labelled in chunks like the training frames)."""
    input:
        frames=[f"{R}/test_set/{t}/frames.extxyz" for t in TEST_TRAJECTORIES],
    output:
        frames=f"{R}/test_set/frames.extxyz",
    log:
        f"{LOGS}/test_set/collect.log",


use rule label_chunk as test_set_label with:
    """PySCF labels of one chunk of the test set (labeling.level, as the training labels)."""
    input:
        frames=rules.test_set_frames.output.frames,
    output:
        db=f"{R}/test_set/chunk{{chunk}}.db",
        report=f"{R}/test_set/chunk{{chunk}}.json",
    log:
        f"{LOGS}/test_set/label_chunk{{chunk}}.log",
    benchmark:
        f"{R}/benchmarks/test_set/label_chunk{{chunk}}.tsv"


use rule merge_labels as test_set_labels with:
    """The test set's labels DB (failed frames stay listed in the report)."""
    input:
        dbs=expand(f"{R}/test_set/chunk{{chunk}}.db", chunk=TEST_CHUNKS),
        reports=expand(f"{R}/test_set/chunk{{chunk}}.json", chunk=TEST_CHUNKS),
    output:
        db=f"{R}/test_set/labels.db",
        report=f"{R}/test_set/report.json",
    log:
        f"{LOGS}/test_set/merge.log",
