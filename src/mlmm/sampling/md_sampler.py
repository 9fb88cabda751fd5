"""GFN2-xTB/MM Langevin MD sampler for the initial training frames.

Potential: vacuum GFN2-xTB (tblite) for the QM region + the force field's MM terms and QM–MM
Lennard-Jones + mechanical-embedding Coulomb between *fixed* QM charges and the MM charges.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from ase import Atoms

from mlmm.dynamics.md import run_md
from mlmm.sampling.common import xtb_mm_potential
from mlmm.settings import EmbeddingSettings, XtbMDSettings
from mlmm.system import System

_log = logging.getLogger(__name__)


def sample_xtb_md(
    system: System,
    sampler: XtbMDSettings,
    embedding: EmbeddingSettings,
    *,
    max_force_ev_ang: float = 50.0,
    log: logging.Logger | None = None,
) -> list[Atoms]:
    """Run xTB/MM Langevin MD (``sampler``: timestep fs, temperature K, friction 1/fs) from the
    system's positions and return ``sampler.n_frames`` Frames.

    Frames are cut with ``System.cut_frame(embedding)`` after ``equilibration_steps`` and then
    every ``stride`` steps; info: sampler="xtb_md", iteration=0, source="<structure>:step<k>",
    seed. The QM charges for the mechanical embedding are GFN2 Mulliken charges of the solute
    computed once at the start and kept fixed: tblite has no point-charge embedding, and
    geometry-dependent charges without their response term would make the forces
    non-conservative. This only steers the sampling; the labels come from PySCF with full
    electrostatic embedding. Waters are rigid (the force field's constraints). Raises RuntimeError
    on a blow-up.
    """
    log = log or _log
    n_frames, stride, equilibration_steps, seed = sampler.n_frames, sampler.stride, sampler.equilibration_steps, sampler.seed
    if n_frames < 1 or stride < 1 or equilibration_steps < 0:
        raise ValueError(f"sample_xtb_md: need n_frames >= 1, stride >= 1, equilibration_steps >= 0 "
                         f"(got {n_frames}, {stride}, {equilibration_steps})")
    frames: list[Atoms] = []
    temperatures: list[float] = []

    def on_frame(step: int, current: Atoms) -> str | None:
        frame, _ = system.cut_frame(current.positions, embedding, sampler="xtb_md", iteration=0,
                                    source=f"{system.source}:step{step}", seed=seed)
        frames.append(frame)
        temperatures.append(float(current.info["temperature_K"]))
        return None

    t0 = time.perf_counter()
    run = run_md(
        xtb_mm_potential(system, embedding),
        steps=equilibration_steps + n_frames * stride,
        timestep_fs=sampler.timestep,
        temperature_K=sampler.temperature,
        friction_per_fs=sampler.friction,
        seed=seed,
        stride=stride,
        first_frame_after=equilibration_steps,
        on_frame=on_frame,
        max_force_ev_ang=max_force_ev_ang,
        progress_desc="xtb_md",
    )
    reason, done = run.stop_reason, run.steps_done
    ms_per_step = 1e3 * (time.perf_counter() - t0) / max(done, 1)
    if reason:
        raise RuntimeError(f"xtb_md on {system.source}: {reason}")
    log.info("xtb_md: %d steps of %.2f fs, %.1f ms/step, %d frames, mean T %.0f K (target %.0f K)",
             done, sampler.timestep, ms_per_step, len(frames), float(np.mean(temperatures)), sampler.temperature)
    return frames
