"""Shared paths and helpers: iterations, chunks and members are wildcards so `snakemake -n` shows the whole DAG.

The active-learning loop runs on two surfaces with the same rules (the bright-state rules
reuse the ground-state ones with other paths): "ground" (results/labels, models, al; settings
`al`, `training`) and "bright" (the excited-state loop under results/excited; `excited.al` over
`al`, `excited.training` over `training`). The path helpers below take the surface.
"""

import math
from pathlib import Path

from snakemake.exceptions import WorkflowError
from mlmm.settings import bright_al_section

R = config["results_dir"]
# logs live with the results they explain, so two results directories never share a log
LOGS = f"{R}/logs"
ENVS = "../../envs"
SCRIPTS = "../../scripts"
EXC = f"{R}/excited"
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


def input_file(field: str) -> list:
    """The file a `system.<key>` config field names, as a rule input ([] when the field is null).

    Checked here, when the DAG is built, so a missing file fails at once with the field's name
    instead of as a FileNotFoundError inside a job; as a rule input, a changed file reruns the
    jobs that read it.
    """
    path = config["system"][field]
    if path is None:
        return []
    if not Path(path).is_file():
        raise WorkflowError(
            f"config system.{field}: file {path!r} does not exist "
            f"(relative paths start at the working directory {Path.cwd()})"
        )
    return [path]


def force_field_files() -> list:
    """The force-field files of `system.force_field` and `system.parameters` that are files, as
    rule inputs (a changed file reruns the jobs that read it). A `force_field` entry that is no
    file must be one of OpenMM's bundled force fields (e.g. amber14/tip3p.xml), else the DAG fails
    here with the field's name."""
    import openmm.app

    bundled = Path(openmm.app.__file__).parent / "data"
    files = []
    for field in ("force_field", "parameters"):
        for path in config["system"][field]:
            if Path(path).is_file():
                files.append(path)
            elif field == "parameters" or not (bundled / path).is_file():
                what = (
                    "a file"
                    if field == "parameters"
                    else "a file or one of OpenMM's force fields"
                )
                raise WorkflowError(
                    f"config system.{field}: {path!r} is not {what} (relative paths start at "
                    f"the working directory {Path.cwd()})"
                )
    return files


# The structure, the optional topology and the force-field files: inputs of every rule that loads the system.
STRUCTURE = input_file("structure")[0]
TOPOLOGY = input_file("topology")
FORCE_FIELD_FILES = force_field_files()


def surface_dir(surface: str) -> str:
    """Results folder of a surface's models and AL iterations."""
    return {"ground": R, "bright": EXC}[surface]


def al_settings(surface: str) -> dict:
    """The `al` section the surface's loop runs with (the bright loop: excited.al over al)."""
    if surface == "ground":
        return config["al"]
    return bright_al_section(config["al"], config["excited"]["al"])


def training_settings(surface: str) -> dict:
    """The `training` section the surface's members train with (bright: excited.training over training)."""
    if surface == "ground":
        return config["training"]
    excited = config["excited"]["training"]
    return {
        **config["training"],
        **{k: v for k, v in excited.items() if k != "n_members"},
    }


def al_params(surface: str) -> dict:
    """The AL settings of a per-iteration rule (explore, select), keys in a fixed order.

    A rule's params are its rerun trigger: with `al.max_iterations` among them, raising it to
    extend a run would rerun every finished iteration (mlmm.settings.ALSettings.from_rule_params).
    """
    al = al_settings(surface)
    return {k: al[k] for k in sorted(al) if k != "max_iterations"}


def last_iteration(surface: str) -> int:
    return al_settings(surface)["max_iterations"]


def members(surface: str) -> list:
    """Ensemble member indices of a surface."""
    section = (
        config["training"] if surface == "ground" else config["excited"]["training"]
    )
    return list(range(section["n_members"]))


def walkers(surface: str) -> list:
    """Exploration walker indices of a surface's AL iterations; with `al.stability_steps` the
    last one is the stability probe (mlmm.al.stages.explore)."""
    al = al_settings(surface)
    return list(range(al["n_walkers"] + (1 if al["stability_steps"] else 0)))


def probe_conditions() -> dict:
    """The production conditions of the ground-state loop's stability probe, as params of explore:
    only these keys, so a longer production does not rerun the loop ({} without a probe).
    """
    if not config["al"]["stability_steps"]:
        return {}
    keys = ("timestep", "temperature", "friction", "sigma_stop", "max_force")
    return {k: config["production"][k] for k in keys}


N_ITER = last_iteration("ground")
ITERATIONS = list(range(N_ITER + 1))


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


def label_dbs_up_to(surface: str, it: int) -> list:
    """Label databases of iterations 0..it (bright: the TDDFT labels of the ground-state samples, then AL)."""
    if surface == "ground":
        return [f"{R}/labels/it{i}/labels.db" for i in range(it + 1)]
    return [f"{EXC}/labels/bright.db"] + [
        f"{EXC}/al/it{i}/bright.db" for i in range(1, it + 1)
    ]


def bright_records_up_to(it: int) -> list:
    """Excited-state label records (all states) of the bright-surface databases up to `it`."""
    return [f"{EXC}/labels/records.json"] + [
        f"{EXC}/al/it{i}/records.json" for i in range(1, it + 1)
    ]


# Training data (issue 4): Δ-learning trains on corrections to a baseline.
DELTA = config["training"]["delta"]
ABLATION = config["training"]["field_ablation"]


def training_db(labels_db: str) -> str:
    """The DB a ground-state member trains on: the labels, or their corrections to the Δ baseline."""
    if DELTA == "none":
        return labels_db
    return labels_db[: -len("labels.db")] + f"delta_{DELTA}.db"


def training_dbs_up_to(surface: str, it: int) -> list:
    """The DBs a member of iteration `it` trains on (Δ targets on the ground surface only)."""
    dbs = label_dbs_up_to(surface, it)
    return [training_db(p) for p in dbs] if surface == "ground" else dbs


def member_models(surface: str, it: int) -> list:
    return [
        f"{surface_dir(surface)}/models/it{it}/member{m}.pt" for m in members(surface)
    ]


def previous_member(surface: str, it: int, member) -> list:
    """The same member of the previous iteration (warm start); none for iteration 0."""
    if it < 1:
        return []
    return [f"{surface_dir(surface)}/models/it{it - 1}/member{member}.pt"]


def walker_outputs(surface: str, it, ext: str) -> list:
    """One file per exploration walker of iteration `it` (`ext`: extxyz frames or json stats)."""
    return [
        f"{surface_dir(surface)}/al/it{it}/walker{w}.{ext}" for w in walkers(surface)
    ]


def selection_of(surface: str, it: int) -> list:
    """Selection record of iteration `it` (none for the initial iteration 0)."""
    return [f"{surface_dir(surface)}/al/it{it}/selection.json"] if it >= 1 else []


def evaluations_before(surface: str, it: int) -> list:
    """Held-out test errors of the models trained before iteration `it` (oldest first); the
    bright-state ensembles are not evaluated, so their convergence has no validation term.
    """
    if surface == "bright":
        return []
    return [f"{R}/models/it{i}/ensemble.json" for i in range(it)]


PROPERTY_MODEL_EXT = (
    "pt" if config["excited"]["property_model"]["kind"] == "neural" else "npz"
)


def property_model_of(it: int) -> list:
    """The property model of the bright labels up to `it` whose ΔE σ the next bright selection uses (none if off)."""
    if config["excited"]["al"]["property_sigma"] is None:
        return []
    return [f"{EXC}/al/it{it}/property_model.{PROPERTY_MODEL_EXT}"]


def calibration_of(surface: str, it: int) -> list:
    """σ calibration of iteration `it`'s ensemble, when the trust levels are calibrated (ground only)."""
    if surface == "ground" and config["al"]["calibrated_thresholds"]:
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
    return member_models("ground", N_ITER if wildcards.model == "final" else 0)


METAD_REPLICAS = list(range(config["production"]["metadynamics"]["replicas"]))
