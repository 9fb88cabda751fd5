"""Stage functions of the active-learning rules: exploration walkers and selection."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from mlmm.frames import read_frames, write_frames
from mlmm.jobs import (
    converged_before,
    read_json,
    set_threads,
    system_from_config,
    write_json,
)
from mlmm.logutil import setup_logging

log = logging.getLogger(__name__)


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
    set_threads(threads)
    done = converged_before(previous_selection)
    if done is not None:
        log.info("converged at iteration %d: walker skipped", done["converged_at"])
        write_frames(frames_out, [])
        write_json(stats_out, {"skipped": True, "converged_at": done["converged_at"], "sigmas": [], "breach": False})
        return
    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.model.ensemble import Ensemble
    from mlmm.sampling.uncertainty import biased_term

    system = system_from_config(structure, system_cfg)
    seed = al_cfg["seed"] + 1000 * iteration + walker
    result = run_mlp_md(
        system,
        biased_term(Ensemble.load(list(models)), al_cfg.get("bias")),  # optional σ_E² bias (al.bias)
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

    done = converged_before(previous_selection)
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
