"""File-level stage functions called by the rule scripts (paths in, paths out).

Each function does one Snakemake job: it reads its inputs, calls the library, and writes its
outputs atomically (temp file + rename), logging to the job's log file. Rule scripts only
unpack ``snakemake.*`` and call these, so everything here is testable without Snakemake.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlmm.frames import atomic_write, read_frames, write_frames
from mlmm.logutil import setup_logging

log = logging.getLogger("mlmm.stages")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (NumPy scalars/arrays converted)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    def writer(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=2, default=default)
            fh.write("\n")

    atomic_write(path, writer)


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as fh:
        return json.load(fh)


def _set_threads(threads: int) -> None:
    """Limit BLAS/OpenMP/torch threads to the job's allocation."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def _load_system(structure: str, system_cfg: dict[str, Any]):
    from mlmm.system import load_system

    return load_system(
        structure,
        system_cfg["qm_selection"],
        qm_charge=system_cfg["qm_charge"],
        multiplicity=system_cfg["multiplicity"],
        topology=system_cfg.get("topology"),
    )


# --------------------------------------------------------------------------- system / sampling
def prepare_system(structure: str, system_cfg: dict[str, Any], frame_out: str, info_out: str, log_path: str) -> None:
    """Validate the structure and QM selection; write the first Frame and a system summary."""
    setup_logging(log_path)
    system = _load_system(structure, system_cfg)
    frame, index = system.cut_frame(
        system.atoms.positions,
        system_cfg["embedding_cutoff"],
        sampler="initial",
        iteration=0,
        source=f"{structure}:0",
        seed=0,
    )
    write_frames(frame_out, [frame])
    mm = ~frame.arrays["qm_mask"]
    info = {
        "structure": structure,
        "n_atoms_total": len(system.atoms),
        "n_qm": int(system.n_qm),
        "qm_symbols": frame.get_chemical_symbols()[: system.n_qm],
        "n_mm_in_cutoff": int(mm.sum()),
        "mm_charge_in_cutoff_e": float(np.round(frame.get_initial_charges()[mm].sum(), 6)),
        "periodic": bool(system.atoms.pbc.any()),
        "cell_ang": system.atoms.cell.lengths().tolist(),
        "qm_charge": system.qm_charge,
        "multiplicity": system.multiplicity,
    }
    log.info("system: %s", info)
    write_json(info_out, info)


def sample_xtb_md(
    structure: str,
    system_cfg: dict[str, Any],
    sampler_cfg: dict[str, Any],
    frames_out: str,
    stats_out: str,
    log_path: str,
    threads: int = 1,
) -> None:
    """GFN2-xTB/TIP3P Langevin sampling (see :func:`mlmm.sampling.md_sampler.sample_xtb_md`)."""
    setup_logging(log_path)
    _set_threads(threads)
    from mlmm.sampling.md_sampler import sample_xtb_md as run

    system = _load_system(structure, system_cfg)
    t0 = time.perf_counter()
    frames = run(
        system,
        n_frames=sampler_cfg["n_frames"],
        stride=sampler_cfg["stride"],
        equilibration_steps=sampler_cfg["equilibration_steps"],
        timestep_fs=sampler_cfg["timestep"],
        temperature_K=sampler_cfg["temperature"],
        friction_per_fs=sampler_cfg["friction"],
        cutoff_ang=system_cfg["embedding_cutoff"],
        seed=sampler_cfg["seed"],
        log=log,
    )
    seconds = time.perf_counter() - t0
    write_frames(frames_out, frames)
    n_steps = sampler_cfg["equilibration_steps"] + sampler_cfg["n_frames"] * sampler_cfg["stride"]
    write_json(
        stats_out,
        {"sampler": "xtb_md", "n_frames": len(frames), "md_steps": n_steps, "wall_s": seconds, "ms_per_step": 1e3 * seconds / n_steps},
    )


def collect_frames(inputs: Sequence[str], frames_out: str, log_path: str) -> None:
    """Concatenate Frame files (the iteration-0 dataset from all active samplers)."""
    setup_logging(log_path)
    frames = [f for path in inputs for f in read_frames(path)]
    log.info("collected %d frames from %s", len(frames), list(inputs))
    write_frames(frames_out, frames)


# --------------------------------------------------------------------------- labeling
def label_chunk(
    frames_path: str,
    chunk_index: int,
    chunk_size: int,
    level_cfg: dict[str, Any],
    db_out: str,
    report_out: str,
    log_path: str,
    threads: int = 1,
) -> None:
    """Label one chunk with PySCF QM/MM (resumes from a partial checkpoint of a killed run)."""
    setup_logging(log_path)
    _set_threads(threads)
    from mlmm.labeling.chunks import label_chunk as run

    run(frames_path, chunk_index, chunk_size, level_cfg, db_out, report_out, log_path=None)


def merge_labels(dbs: Sequence[str], reports: Sequence[str], db_out: str, report_out: str, log_path: str) -> None:
    """Merge chunk DBs into the iteration's schnetpack DB and the chunk reports into one."""
    setup_logging(log_path)
    from mlmm.labeling.db import merge_label_dbs

    merge_label_dbs(list(dbs), db_out)
    entries = [e for path in reports for e in read_json(path)["frames"]]
    n_ok = sum(e["status"] == "ok" for e in entries)
    failed = [e for e in entries if e["status"] != "ok"]
    log.info("merged %d labelled frames; %d failed", n_ok, len(failed))
    write_json(report_out, {"n_frames": len(entries), "n_ok": n_ok, "n_failed": len(failed), "failed": failed, "frames": entries})


# --------------------------------------------------------------------------- training
def _selection_record(selection: Sequence[str]) -> dict[str, Any] | None:
    return read_json(selection[0]) if selection else None


def train_member(
    dbs: Sequence[str],
    iteration: int,
    member: int,
    training_cfg: dict[str, Any],
    selection: Sequence[str],
    previous_model: Sequence[str],
    model_out: str,
    metrics_out: str,
    log_dir: str,
    log_path: str,
    threads: int = 1,
) -> None:
    """Train ensemble member ``member`` of iteration ``iteration`` on all labels so far.

    When the iteration added no labels (converged, or nothing in the trust window) the
    previous member is carried forward unchanged instead of retraining on identical data.
    """
    setup_logging(log_path)
    _set_threads(threads)
    record = _selection_record(selection)
    if record is not None and record["n_selected"] == 0 and previous_model:
        log.info("iteration %d added no labels (%s): carrying %s forward", iteration, record["reason"], previous_model[0])
        atomic_write(model_out, lambda tmp: shutil.copyfile(previous_model[0], tmp))
        metrics = read_json(Path(previous_model[0]).with_suffix(".json"))
        metrics["carried_forward_from"] = previous_model[0]
        write_json(metrics_out, metrics)
        return
    from mlmm.config import training_settings
    from mlmm.model.train import train_member as run

    metrics = run(
        list(dbs),
        model_out,
        seed=training_cfg["seed"] + member,
        settings=training_settings(training_cfg, threads),
        log_dir=log_dir,
    )
    metrics.update(iteration=iteration, member=member)
    write_json(metrics_out, metrics)


def evaluate_ensemble(
    models: Sequence[str], dbs: Sequence[str], training_cfg: dict[str, Any], out: str, log_path: str, threads: int = 1
) -> None:
    """Ensemble MAEs on the held-out test frames (identical for all members, never trained on)."""
    setup_logging(log_path)
    _set_threads(threads)
    from mlmm.model.ensemble import Ensemble
    from mlmm.model.train import held_out_test_set

    ensemble = Ensemble.load(list(models))
    db_path, test_idx, workdir = held_out_test_set(list(dbs), test_fraction=training_cfg["test_fraction"])
    try:
        result = ensemble.evaluate_db(db_path, indices=test_idx) if len(test_idx) else {}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {k: v for k, v in result.items() if not isinstance(v, (list, np.ndarray))}
    result.update(n_test=len(test_idx), models=list(models))
    log.info("ensemble test errors: %s", result)
    write_json(out, result)


# --------------------------------------------------------------------------- active learning
def _converged_before(previous_selection: Sequence[str]) -> dict[str, Any] | None:
    record = _selection_record(previous_selection)
    return record if record is not None and record["converged"] else None


def explore(
    structure: str,
    models: Sequence[str],
    previous_selection: Sequence[str],
    iteration: int,
    walker: int,
    al_cfg: dict[str, Any],
    system_cfg: dict[str, Any],
    frames_out: str,
    stats_out: str,
    log_path: str,
    threads: int = 1,
) -> None:
    """One MLP/MM MD walker; records σ per saved frame and where/why it stopped."""
    setup_logging(log_path)
    _set_threads(threads)
    done = _converged_before(previous_selection)
    if done is not None:
        log.info("converged at iteration %d: walker skipped", done["converged_at"])
        write_frames(frames_out, [])
        write_json(stats_out, {"skipped": True, "converged_at": done["converged_at"], "sigmas": [], "breach": False})
        return
    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.model.ensemble import Ensemble

    system = _load_system(structure, system_cfg)
    seed = al_cfg["seed"] + 1000 * iteration + walker
    result = run_mlp_md(
        system,
        Ensemble.load(list(models)),
        steps=al_cfg["steps"],
        timestep_fs=al_cfg["timestep"],
        temperature_K=al_cfg["temperature"],
        friction_per_fs=al_cfg["friction"],
        stride=al_cfg["stride"],
        seed=seed,
        sigma_stop=al_cfg["sigma_stop"],
        max_force=al_cfg["max_force"],
        cutoff_ang=system_cfg["embedding_cutoff"],
        sampler="al_explore",
        iteration=iteration,
        source=f"{structure}:it{iteration}:walker{walker}",
    )
    write_frames(frames_out, result.frames)
    write_json(
        stats_out,
        {
            "skipped": False,
            "seed": seed,
            "steps_requested": al_cfg["steps"],
            "steps_done": result.steps_done,
            "stop_reason": result.stop_reason,
            "breach": result.stop_reason is not None,
            "sigmas": result.sigmas,
            "ms_per_step": result.ms_per_step,
        },
    )


def select(
    frames: Sequence[str],
    stats: Sequence[str],
    previous_selection: Sequence[str],
    iteration: int,
    al_cfg: dict[str, Any],
    selected_out: str,
    selection_out: str,
    log_path: str,
) -> None:
    """Trust window + diversity over all walkers; writes the selected Frames and the convergence flag."""
    setup_logging(log_path)
    from mlmm.al.selection import is_converged, select_frames

    done = _converged_before(previous_selection)
    all_frames = [f for path in frames for f in read_frames(path)]
    walker_stats = [read_json(p) for p in stats]
    sigmas = np.array([s for st in walker_stats for s in st["sigmas"]], float)
    record: dict[str, Any] = {"iteration": iteration, "n_explored": len(all_frames)}
    if done is not None:
        record.update(converged=True, converged_at=done["converged_at"], n_selected=0, reason=f"converged at iteration {done['converged_at']}")
        write_frames(selected_out, [])
        write_json(selection_out, record)
        return
    picked, counts = select_frames(
        all_frames, sigmas, sigma_lo=al_cfg["sigma_lo"], sigma_hi=al_cfg["sigma_hi"], max_selected=al_cfg["max_selected"]
    )
    breach = any(st["breach"] for st in walker_stats)
    converged = is_converged(counts, breach, al_cfg["converged_fraction"])
    if converged:
        picked = []
    selected = [all_frames[i] for i in picked]
    for frame in selected:
        frame.info["iteration"] = iteration
    write_frames(selected_out, selected)
    record.update(
        converged=converged,
        converged_at=iteration if converged else None,
        n_selected=len(selected),
        reason="converged" if converged else ("selected" if selected else "no frame in the trust window"),
        accurate=counts.accurate,
        candidate=counts.candidate,
        failed=counts.failed,
        fraction_accurate=counts.accurate / counts.total if counts.total else 0.0,
        any_breach=breach,
        walkers=[{k: st.get(k) for k in ("steps_done", "steps_requested", "stop_reason")} for st in walker_stats],
        sigma_max=float(sigmas.max()) if len(sigmas) else None,
        sigma_mean=float(sigmas.mean()) if len(sigmas) else None,
    )
    log.info("selection: %s", record)
    write_json(selection_out, record)


# --------------------------------------------------------------------------- production / summary
def production(
    structure: str,
    models: Sequence[str],
    production_cfg: dict[str, Any],
    system_cfg: dict[str, Any],
    trajectory_out: str,
    topology_out: str,
    sigma_out: str,
    stats_out: str,
    log_path: str,
    threads: int = 1,
) -> None:
    """MLP/MM MD of the full system; trajectory in the input's atom order (+ PDB topology) and σ(t)."""
    setup_logging(log_path)
    _set_threads(threads)
    import MDAnalysis as mda
    from ase.io import write

    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.model.ensemble import Ensemble

    system = _load_system(structure, system_cfg)
    cfg = production_cfg
    result = run_mlp_md(
        system,
        Ensemble.load(list(models)),
        steps=cfg["steps"],
        timestep_fs=cfg["timestep"],
        temperature_K=cfg["temperature"],
        friction_per_fs=cfg["friction"],
        stride=cfg["stride"],
        seed=cfg["seed"],
        sigma_stop=cfg["sigma_stop"],
        max_force=cfg["max_force"],
        cutoff_ang=system_cfg["embedding_cutoff"],
        sampler="production",
        iteration=-1,
        source=f"{structure}:production",
        keep_full_system=True,
    )
    snapshots = [system.to_input_order(a) for a in result.snapshots]
    atomic_write(trajectory_out, lambda tmp: write(tmp, snapshots, format="extxyz"))
    universe = mda.Universe(structure)
    atomic_write(topology_out, lambda tmp: universe.atoms.write(tmp, file_format="PDB"))

    def write_sigma(tmp: str) -> None:
        np.savetxt(
            tmp,
            np.column_stack([result.times_fs, result.sigmas, result.potential_energies]),
            delimiter=",",
            header="time_fs,sigma_force_eV_per_A,potential_energy_eV",
            comments="",
        )

    atomic_write(sigma_out, write_sigma)
    write_json(
        stats_out,
        {
            "steps_requested": cfg["steps"],
            "steps_done": result.steps_done,
            "length_ps": result.steps_done * cfg["timestep"] / 1000.0,
            "stop_reason": result.stop_reason,
            "sigma_max": float(np.max(result.sigmas)) if len(result.sigmas) else None,
            "sigma_mean": float(np.mean(result.sigmas)) if len(result.sigmas) else None,
            "n_frames": len(snapshots),
            "ms_per_step": result.ms_per_step,
        },
    )


def summary(
    label_dbs: Sequence[str],
    label_reports: Sequence[str],
    evaluations: Sequence[str],
    selections: Sequence[str],
    models: Sequence[str],
    production_stats: str,
    trajectory: str,
    out: str,
    log_path: str,
) -> None:
    """Collect the paths of the final products and the key figures into one JSON file."""
    setup_logging(log_path)
    reports = [read_json(p) for p in label_reports]
    evals = [read_json(p) for p in evaluations]
    sels = [read_json(p) for p in selections]
    prod = read_json(production_stats)
    converged_at = next((s["converged_at"] for s in sels if s["converged"]), None)
    data = {
        "final_models": list(models),
        "label_databases": list(label_dbs),
        "production_trajectory": trajectory,
        "labels_per_iteration": [r["n_ok"] for r in reports],
        "failed_labels_per_iteration": [r["n_failed"] for r in reports],
        "labels_total": int(sum(r["n_ok"] for r in reports)),
        "test_errors_per_iteration": evals,
        "test_errors_final": evals[-1],
        "al_iterations_run": len(sels),
        "al_iterations_with_new_labels": sum(s["n_selected"] > 0 for s in sels),
        "converged": converged_at is not None,
        "converged_at_iteration": converged_at,
        "selection_per_iteration": [{k: s.get(k) for k in ("iteration", "n_explored", "n_selected", "fraction_accurate", "any_breach", "reason")} for s in sels],
        "production": prod,
    }
    log.info("summary: %s", json.dumps(data, indent=1, default=str))
    write_json(out, data)
