"""MLP/MM molecular dynamics of the full system with an ensemble for the QM region.

E = E_ML(QM atoms | MM charges) + E_TIP3P(MM–MM) + E_LJ(QM–MM). The ensemble sees the Frame cut
around the QM region (whole molecules within the embedding cutoff); its forces on QM atoms and
MM sites are mapped back onto the full system. σ (ensemble force spread, eV/Å) is recorded at
every saved frame; the run stops cleanly at a σ breach or a force blow-up.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from mlmm.dynamics.md import run_langevin
from mlmm.mm import MMForceField, QMMMCalculator, default_mm_cutoff

log = logging.getLogger(__name__)


@dataclass
class MLPMDResult:
    """What an MLP/MM run produced (frames and σ at every `stride` steps)."""

    frames: list[Atoms] = field(default_factory=list)  #: cut Frames, info["sigma_force"] set
    sigmas: list[float] = field(default_factory=list)  #: eV/Å
    times_fs: list[float] = field(default_factory=list)
    potential_energies: list[float] = field(default_factory=list)  #: eV, full system
    snapshots: list[Atoms] = field(default_factory=list)  #: full system (if kept)
    steps_done: int = 0
    stop_reason: str | None = None
    ms_per_step: float = float("nan")


def run_mlp_md(
    system,
    ensemble,
    *,
    steps: int,
    timestep_fs: float,
    temperature_K: float,
    friction_per_fs: float,
    stride: int,
    seed: int,
    sigma_stop: float,
    max_force: float,
    cutoff_ang: float,
    sampler: str,
    iteration: int,
    source: str,
    keep_full_system: bool = False,
) -> MLPMDResult:
    """Langevin MLP/MM MD from the system's current positions; see module docstring."""
    atoms = system.atoms.copy()
    atoms.calc = QMMMCalculator(system, ensemble, MMForceField(system, cutoff_ang=default_mm_cutoff(system)), cutoff_ang)
    result = MLPMDResult()

    def on_frame(step: int, current: Atoms) -> str | None:
        sigma = float(current.calc.results["sigma_force"])
        frame, _ = system.cut_frame(
            current.positions,
            cutoff_ang,
            sampler=sampler,
            iteration=iteration,
            source=f"{source}:step{step}",
            seed=seed,
        )
        frame.info["sigma_force"] = sigma
        result.frames.append(frame)
        result.sigmas.append(sigma)
        result.times_fs.append(step * timestep_fs)
        result.potential_energies.append(float(current.get_potential_energy()))
        if keep_full_system:
            snap = current.copy()
            snap.calc = None
            result.snapshots.append(snap)
        if sigma > sigma_stop:
            return f"sigma breach: {sigma:.3f} eV/Å > sigma_stop {sigma_stop} eV/Å at step {step}"
        return None

    t0 = time.perf_counter()
    reason, steps_done = run_langevin(
        atoms,
        steps=steps,
        timestep_fs=timestep_fs,
        temperature_K=temperature_K,
        friction_per_fs=friction_per_fs,
        seed=seed,
        stride=stride,
        on_frame=on_frame,
        constraints=system.water_constraints(),
        max_force_ev_ang=max_force,
        progress_desc=f"{sampler} MLP/MM MD",
    )
    result.steps_done = steps_done
    result.stop_reason = reason
    result.ms_per_step = 1e3 * (time.perf_counter() - t0) / max(steps_done, 1)
    if reason:
        log.warning("MLP/MM MD stopped after %d of %d steps: %s", steps_done, steps, reason)
    log.info("MLP/MM MD: %d steps, %.1f ms/step, max σ %.3f eV/Å", steps_done, result.ms_per_step, max(result.sigmas, default=np.nan))
    return result
