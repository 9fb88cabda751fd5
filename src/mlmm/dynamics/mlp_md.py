"""MLP/MM molecular dynamics of the full system with an ensemble for the QM region.

E = E_ML(QM atoms | weighted MM charges) + E_MM(MM–MM) + E_LJ(QM–MM): the ``ensemble``/``delta``
potential of :mod:`mlmm.potentials`, run by the OpenMM driver :func:`mlmm.dynamics.md.run_md`. The
ensemble sees the Frame cut around the QM region with the system's embedding (:mod:`mlmm.embedding`:
whole molecules, weighted per molecule); its forces on QM atoms and MM sites are mapped back onto
the full system. σ (ensemble force spread, eV/Å) is recorded at every saved frame. What a σ above
``sigma_stop`` does is the ``sigma_action``: ``stop`` ends the run cleanly (exploration,
default), ``warn`` logs and counts it, ``collect`` keeps the Frame for labeling and goes on. A
force blow-up always stops the run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
import os

import numpy as np
from ase import Atoms

from mlmm.dynamics.md import Checkpoint, CheckpointSpec, run_md
from mlmm.engines.plumed import PlumedBias
from mlmm.potentials import QMMMCalculator

log = logging.getLogger(__name__)

SIGMA_ACTIONS = ("stop", "warn", "collect")


@dataclass
class MLPMDResult:
    """What an MLP/MM run produced (frames and σ at every `stride` steps)."""

    frames: list[Atoms] = field(default_factory=list)  #: cut Frames, info["sigma_force"] set
    sigmas: list[float] = field(default_factory=list)  #: eV/Å
    times_fs: list[float] = field(default_factory=list)
    potential_energies: list[float] = field(default_factory=list)  #: eV, full system
    kinetic_energies: list[float] = field(default_factory=list)  #: eV, full system
    temperatures_K: list[float] = field(default_factory=list)  #: instantaneous, from the kinetic energy
    sigma_exceeded_steps: list[int] = field(default_factory=list)  #: steps with σ > sigma_stop
    collected: list[Atoms] = field(default_factory=list)  #: Frames with σ > sigma_stop (action "collect")
    final_state: Atoms | None = None  #: full system with momenta at the end (restart point)
    steps_done: int = 0
    stop_reason: str | None = None
    ms_per_step: float = float("nan")


def run_mlp_md(
    system,
    potential: QMMMCalculator,
    *,
    steps: int,
    timestep_fs: float,
    temperature_K: float,
    friction_per_fs: float,
    stride: int,
    seed: int,
    sigma_stop: float,
    max_force: float,
    sampler: str,
    iteration: int,
    source: str,
    sigma_action: str = "stop",
    start: Atoms | None = None,
    bias: PlumedBias | None = None,
    trajectory: str | os.PathLike | None = None,
    checkpoint: CheckpointSpec | None = None,
    pressure_bar: float | None = None,
) -> MLPMDResult:
    """Langevin MLP/MM MD (friction 0: NVE, velocity Verlet) on ``potential`` (from
    :func:`mlmm.potentials.ensemble_potential`); see module docstring.

    Saved Frames are cut with the potential's embedding. Starts from the system's positions
    with Maxwell–Boltzmann velocities, or from ``start`` (positions and momenta of a previous run's
    ``final_state``). ``bias``: a PLUMED bias on the run; σ and the recorded potential energies
    are always those of the unbiased MLP/MM potential. ``trajectory``: DCD of the full system at
    every saved step (structure-file order). ``checkpoint``: resume a killed run from its last
    checkpoint (the OpenMM state and everything recorded so far), checkpointing as it goes.
    ``pressure_bar``: NPT (Monte Carlo barostat) instead of NVT; Frames are cut in the current box.
    """
    if sigma_action not in SIGMA_ACTIONS:
        raise ValueError(f"sigma_action must be one of {SIGMA_ACTIONS}, got {sigma_action!r}")
    result = MLPMDResult()

    def restore(saved: MLPMDResult) -> None:
        for f in fields(MLPMDResult):
            setattr(result, f.name, getattr(saved, f.name))

    def on_frame(step: int, current: Atoms) -> str | None:
        sigma = float(potential.results["sigma_force"])
        view = system.with_box(current.cell.array) if pressure_bar is not None else system
        frame, _ = view.cut_frame(
            current.positions,
            potential.embedding,
            sampler=sampler,
            iteration=iteration,
            source=f"{source}:step{step}",
            seed=seed,
        )
        frame.info["sigma_force"] = sigma
        result.frames.append(frame)
        result.sigmas.append(sigma)
        result.times_fs.append(step * timestep_fs)
        result.potential_energies.append(float(potential.results["energy"]))
        result.kinetic_energies.append(float(current.info["kinetic_energy_ev"]))
        result.temperatures_K.append(float(current.info["temperature_K"]))
        if sigma <= sigma_stop:
            return None
        message = f"sigma breach: {sigma:.3f} eV/Å > sigma_stop {sigma_stop} eV/Å at step {step}"
        result.sigma_exceeded_steps.append(step)
        if sigma_action == "stop":
            return message
        if sigma_action == "collect":
            result.collected.append(frame)
        log.warning("%s (%s, continuing)", message, sigma_action)
        return None

    t0 = time.perf_counter()
    run = run_md(
        potential,
        steps=steps,
        timestep_fs=timestep_fs,
        temperature_K=temperature_K,
        friction_per_fs=friction_per_fs,
        seed=seed,
        stride=stride,
        on_frame=on_frame,
        max_force_ev_ang=max_force,
        start=start,
        bias=bias,
        trajectory=trajectory,
        checkpoint=None if checkpoint is None else Checkpoint(checkpoint, lambda: result, restore),
        pressure_bar=pressure_bar,
        progress_desc=f"{sampler} MLP/MM MD",
    )
    reason, steps_done = run.stop_reason, run.steps_done
    result.final_state = run.final_state
    result.steps_done = steps_done
    result.stop_reason = reason
    result.ms_per_step = 1e3 * (time.perf_counter() - t0) / max(steps_done, 1)
    if reason:
        log.warning("MLP/MM MD stopped after %d of %d steps: %s", steps_done, steps, reason)
    log.info("MLP/MM MD: %d steps, %.1f ms/step, max σ %.3f eV/Å", steps_done, result.ms_per_step, max(result.sigmas, default=np.nan))
    return result
