"""Shared paths and helpers: iterations, chunks and members are wildcards so `snakemake -n` shows the whole DAG."""

import math

R = config["results_dir"]
LOGS = "logs"
ENVS = "../../envs"
SCRIPTS = "../../scripts"
N_ITER = config["al"]["max_iterations"]
ITERATIONS = list(range(N_ITER + 1))
MEMBERS = list(range(config["training"]["n_members"]))
WALKERS = list(range(config["al"]["n_walkers"]))
ACTIVE_SAMPLERS = [name for name, s in config["sampling"].items() if s["activate"]]
# Extra JSON files merged into results/summary.json under their key; rule files register
# theirs here (summary.smk is included last).
SUMMARY_EXTRAS = {}


wildcard_constraints:
    it=r"\d+",
    model="final|initial",
    replica=r"\d+",
    chunk=r"\d+",
    member=r"\d+",
    walker=r"\d+",


def n_frames_to_label(it: int) -> int:
    """Upper bound of frames labelled in iteration `it` (fixed in advance so no checkpoint is needed)."""
    if it == 0:
        return sum(config["sampling"][s]["n_frames"] for s in ACTIVE_SAMPLERS)
    return config["al"]["max_selected"]


def chunk_ids(it: int) -> list:
    return list(
        range(math.ceil(n_frames_to_label(it) / config["labeling"]["chunk_size"]))
    )


def frames_to_label(wildcards):
    it = int(wildcards.it)
    if it == 0:
        return f"{R}/sampling/frames.extxyz"
    return f"{R}/al/it{it}/selected.extxyz"


def label_dbs_up_to(it: int) -> list:
    return [f"{R}/labels/it{i}/labels.db" for i in range(it + 1)]


def member_models(it: int) -> list:
    return [f"{R}/models/it{it}/member{m}.pt" for m in MEMBERS]


def selection_of(it: int) -> list:
    """Selection record of iteration `it` (none for the initial iteration 0)."""
    return [f"{R}/al/it{it}/selection.json"] if it >= 1 else []


def evaluations_before(it: int) -> list:
    """Held-out test errors of the models trained before iteration `it` (oldest first)."""
    return [f"{R}/models/it{i}/ensemble.json" for i in range(it)]


def calibration_of(it: int) -> list:
    """σ calibration of iteration `it`'s ensemble, when the trust levels are calibrated."""
    if config["al"]["calibrated_thresholds"]:
        return [f"{R}/models/it{it}/calibration.json"]
    return []


PROD = f"{R}/production"
PRODUCTION_MODELS = ["final"] + (
    ["initial"] if config["production"]["compare_initial_model"] else []
)


def production_replicas(model: str) -> list:
    """Replica directories of one ensemble (the initial ensemble runs replica 0 only)."""
    n = config["production"]["replicas"] if model == "final" else 1
    return [f"{PROD}/{model}/replica{r}" for r in range(n)]


def production_models(wildcards) -> list:
    """Members of the ensemble a production replica runs with (final or iteration 0)."""
    return member_models(N_ITER if wildcards.model == "final" else 0)


METAD_REPLICAS = list(range(config["production"]["metadynamics"]["replicas"]))
