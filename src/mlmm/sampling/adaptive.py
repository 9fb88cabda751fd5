"""Adaptive sampling: short xTB/MM runs restarted from the least-visited regions of a CV space.

CVs are internal coordinates of the QM region given by 0-based QM atom indices: 2 atoms = a
distance (Å), 3 = an angle (degrees), 4 = a dihedral (degrees, in (-180, 180]). CV space is cut
into bins of ``bin_width_ang`` / ``bin_width_deg``; coverage = number of bins visited. Each
round runs ``n_walkers`` short Langevin runs; the first round starts from the input structure,
later ones from snapshots in the least-visited bins (fresh Maxwell–Boltzmann velocities). The
loop stops when a round adds fewer than ``min_growth`` × coverage new bins, or after
``max_rounds``. Frames are then taken one per bin, rarest bins first, round robin.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Sequence

import numpy as np
from ase import Atoms

from mlmm.dynamics.md import run_md
from mlmm.sampling.common import xtb_mm_potential
from mlmm.seeds import derive_seed
from mlmm.settings import AdaptiveSettings, EmbeddingSettings
from mlmm.system import System

_log = logging.getLogger(__name__)


def internal_cvs(qm_positions_ang: np.ndarray, cvs: Sequence[Sequence[int]]) -> np.ndarray:
    """Values of distance/angle/dihedral CVs (Å / degrees) of one QM geometry."""
    x = np.asarray(qm_positions_ang, float)
    out = []
    for atoms in cvs:
        p = x[list(atoms)]
        if len(atoms) == 2:
            out.append(float(np.linalg.norm(p[1] - p[0])))
        elif len(atoms) == 3:
            a, b = p[0] - p[1], p[2] - p[1]
            out.append(float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))))
        elif len(atoms) == 4:
            b0, b1, b2 = p[0] - p[1], p[2] - p[1], p[3] - p[2]
            b1n = b1 / np.linalg.norm(b1)
            v = b0 - (b0 @ b1n) * b1n
            w = b2 - (b2 @ b1n) * b1n
            out.append(float(np.degrees(np.arctan2(np.cross(b1n, v) @ w, v @ w))))
        else:
            raise ValueError(f"adaptive: a CV needs 2, 3 or 4 atoms, got {list(atoms)}")
    return np.array(out)


def bin_of(values: np.ndarray, cvs: Sequence[Sequence[int]], bin_width_ang: float, bin_width_deg: float) -> tuple[int, ...]:
    """Grid cell of CV values."""
    widths = [bin_width_ang if len(a) == 2 else bin_width_deg for a in cvs]
    return tuple(int(np.floor(v / w)) for v, w in zip(values, widths))


def sample_adaptive(
    system: System,
    sampler: AdaptiveSettings,
    embedding: EmbeddingSettings,
    *,
    max_force_ev_ang: float = 50.0,
    log: logging.Logger | None = None,
) -> tuple[list[Atoms], dict]:
    """Run the adaptive loop (module docstring; ``sampler``: bin widths Å / degrees, timestep fs,
    temperature K, friction 1/fs); returns (frames, stats incl. coverage per round)."""
    log = log or _log
    cvs, n_frames, n_walkers, seed = sampler.cvs, sampler.n_frames, sampler.n_walkers, sampler.seed
    bin_width_ang, bin_width_deg, min_growth = sampler.bin_width_ang, sampler.bin_width_deg, sampler.min_growth
    if not cvs:
        raise ValueError("adaptive: give at least one CV")
    potential = xtb_mm_potential(system, embedding)
    rng = np.random.default_rng(seed)
    snapshots: list[np.ndarray] = []  # full-system positions
    cv_values: list[np.ndarray] = []
    bins: list[tuple[int, ...]] = []
    coverage: list[int] = []
    starts = [system.atoms.positions.copy()] * n_walkers
    t0 = time.perf_counter()
    n_steps = 0
    stop = "max_rounds"
    for rnd in range(sampler.max_rounds):
        for w, start in enumerate(starts):
            begin = system.atoms.copy()
            begin.positions = start
            run_seed = derive_seed(seed, stream="adaptive_run", iteration=rnd, index=w)

            def record(step: int, current: Atoms) -> None:
                qm = system.whole_qm_positions(current.positions)
                values = internal_cvs(qm, cvs)
                snapshots.append(current.positions.copy())
                cv_values.append(values)
                bins.append(bin_of(values, cvs, bin_width_ang, bin_width_deg))
                return None

            run = run_md(potential, steps=sampler.steps, timestep_fs=sampler.timestep, temperature_K=sampler.temperature,
                         friction_per_fs=sampler.friction, seed=run_seed, stride=sampler.stride, on_frame=record,
                         max_force_ev_ang=max_force_ev_ang, start=begin)
            n_steps += run.steps_done
            if run.stop_reason:
                raise RuntimeError(f"adaptive round {rnd} walker {w}: {run.stop_reason}")
        counts = Counter(bins)
        coverage.append(len(counts))
        log.info("adaptive round %d: %d snapshots, coverage %d bins", rnd, len(bins), coverage[-1])
        if rnd > 0 and coverage[-1] - coverage[-2] < min_growth * coverage[-2]:
            stop = f"coverage grew by {coverage[-1] - coverage[-2]} < {min_growth} x {coverage[-2]} bins"
            break
        # restart from snapshots in the least-visited bins (ties broken at random)
        order = sorted(range(len(bins)), key=lambda i: (counts[bins[i]], rng.random()))
        chosen, seen = [], set()
        for i in order:
            if bins[i] not in seen:
                chosen.append(i)
                seen.add(bins[i])
            if len(chosen) == n_walkers:
                break
        starts = [snapshots[i] for i in (chosen * n_walkers)[:n_walkers]]
    seconds = time.perf_counter() - t0
    # frames: one per bin, rarest first, round robin over bins until n_frames
    counts = Counter(bins)
    by_bin: dict[tuple[int, ...], list[int]] = {}
    for i, b in enumerate(bins):
        by_bin.setdefault(b, []).append(i)
    for members in by_bin.values():
        rng.shuffle(members)
    ordered_bins = sorted(by_bin, key=lambda b: counts[b])
    picked: list[int] = []
    depth = 0
    while len(picked) < min(n_frames, len(bins)):
        for b in ordered_bins:
            if depth < len(by_bin[b]) and len(picked) < n_frames:
                picked.append(by_bin[b][depth])
        depth += 1
    frames = []
    for i in picked:
        frame, _ = system.cut_frame(snapshots[i], embedding, sampler="adaptive", iteration=0,
                                    source=f"{system.source}:snapshot{i}", seed=seed, cv=cv_values[i].tolist())
        frames.append(frame)
    log.info("adaptive: stopped (%s); %d frames from %d snapshots in %d bins", stop, len(frames), len(bins), len(counts))
    stats = {"coverage_per_round": coverage, "stop": stop, "md_steps": n_steps, "md_wall_s": seconds,
             "cv_values": np.array(cv_values), "picked": picked, "n_bins": len(counts)}
    return frames, stats
