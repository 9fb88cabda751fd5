"""Choose which explored frames to label.

Trust window: frames with ensemble force uncertainty ``sigma_lo < σ < sigma_hi`` (eV/Å) are
candidates — below ``sigma_lo`` the model is already accurate, above ``sigma_hi`` the
configuration is likely unphysical (the model extrapolates wildly), so labelling it wastes QM
time. Candidates are then thinned by farthest-point sampling on a descriptor of geometry and
environment so that one iteration does not label many near-identical frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from mlmm.embedding import weighted_charges
from mlmm.frames import qm_mask
from mlmm.model.calibration import SigmaMap
from mlmm.records import Record, optional
from mlmm.units import COULOMB_EV_ANGSTROM


@dataclass
class SelectionRecord(Record):
    """``al/it{i}/selection.json``: what the selection of AL iteration ``i`` found and decided.

    σ values (eV/Å) are the walkers' raw σ after the calibration map the selection used
    (:meth:`sigma_map`: knots ``map_sigma``/``map_error`` and slope ``sigma_scale`` beyond them;
    no knots and ``sigma_scale`` 1 — the identity — unless ``al.calibrated_thresholds``; records
    written before the knots existed map σ to ``sigma_scale``·σ). The keys from ``accurate`` on
    are absent in the record of an iteration after convergence. ``trust_levels``: the levels
    (eV/Å) the mapped σ met (:class:`mlmm.al.stages.TrustLevels`).
    """

    iteration: int
    n_explored: int
    converged: bool
    converged_at: int | None
    n_selected: int
    reason: str
    sigma_scale: float = 1.0
    map_sigma: list[float] | None = optional()
    map_error: list[float] | None = optional()
    accurate: int | None = optional()
    candidate: int | None = optional()
    failed: int | None = optional()
    fraction_accurate: float | None = optional()
    criteria: dict[str, Any] | None = optional()
    any_breach: bool | None = optional()
    validation_force_mae_qm: list[float | None] | None = optional()
    walkers: list[dict[str, Any]] | None = optional()
    trust_levels: dict[str, float | None] | None = optional()
    sigma_max: float | None = optional()
    sigma_mean: float | None = optional()
    #: Bright loop with a property model: frames whose committee σ of the bright ΔE (eV) exceeded
    #: ``property_sigma_ev`` (candidates whatever their force σ below sigma_hi), and that σ's maximum.
    property_candidate: int | None = optional()
    property_sigma_ev: float | None = optional()
    property_sigma_max_ev: float | None = optional()

    def sigma_map(self) -> SigmaMap:
        """The map from raw walker σ to the σ this selection compared with its trust window (eV/Å)."""
        return SigmaMap(self.sigma_scale, tuple(self.map_sigma or ()), tuple(self.map_error or ()))


def read_selection(paths: Sequence[str]) -> SelectionRecord | None:
    """The selection record of the previous AL iteration (``paths`` is empty for iteration 0: None)."""
    return SelectionRecord.from_json(paths[0]) if paths else None


def converged_before(paths: Sequence[str]) -> SelectionRecord | None:
    """The previous selection record if active learning had converged by then, else None."""
    record = read_selection(paths)
    return record if record is not None and record.converged else None


@dataclass(frozen=True)
class WindowCounts:
    """How explored frames fall into the trust window."""

    accurate: int  # σ <= sigma_lo
    candidate: int  # sigma_lo < σ < sigma_hi
    failed: int  # σ >= sigma_hi

    @property
    def total(self) -> int:
        return self.accurate + self.candidate + self.failed


def trust_window(sigmas_ev_ang: np.ndarray, sigma_lo: float, sigma_hi: float) -> tuple[np.ndarray, WindowCounts]:
    """Indices of candidate frames and the accurate/candidate/failed counts."""
    s = np.asarray(sigmas_ev_ang, float)
    accurate = s <= sigma_lo
    failed = s >= sigma_hi
    candidate = ~accurate & ~failed
    counts = WindowCounts(int(accurate.sum()), int(candidate.sum()), int(failed.sum()))
    return np.flatnonzero(candidate), counts


def descriptor(frame: Atoms) -> np.ndarray:
    """Geometry + environment descriptor of a Frame.

    Inverse QM–QM distances (1/Å, fixed atom order within one system) and the electrostatic
    potential of the embedding-weighted MM charges (:mod:`mlmm.embedding`) at each QM atom (eV/e,
    scaled by 1/10 so both parts are O(1)).
    """
    mask = qm_mask(frame)
    pos = frame.positions
    qm = pos[mask]
    iu = np.triu_indices(len(qm), k=1)
    inv_d = 1.0 / np.linalg.norm(qm[:, None] - qm[None, :], axis=-1)[iu]
    q = weighted_charges(frame)[~mask]
    r = np.linalg.norm(qm[:, None, :] - pos[~mask][None, :, :], axis=-1)
    potential = COULOMB_EV_ANGSTROM * (q[None, :] / r).sum(axis=1) if len(q) else np.zeros(len(qm))
    return np.concatenate([inv_d, potential / 10.0])


def farthest_point_sampling(features: np.ndarray, n_select: int, start: int = 0) -> list[int]:
    """Greedy max-min selection of ``n_select`` rows of ``features`` beginning with ``start``."""
    n = len(features)
    if n == 0 or n_select <= 0:
        return []
    chosen = [start]
    dist = np.linalg.norm(features - features[start], axis=1)
    while len(chosen) < min(n_select, n):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(features - features[nxt], axis=1))
    return chosen


def select_frames(
    frames: list[Atoms], sigmas_ev_ang: np.ndarray, *, sigma_lo: float, sigma_hi: float, max_selected: int,
    also: np.ndarray | None = None,
) -> tuple[list[int], WindowCounts]:
    """Indices of frames to label: trust-window candidates, diversity-thinned to ``max_selected``.

    ``also`` (bool per frame) marks further candidates whatever their force σ, unless it is at or
    above ``sigma_hi`` (e.g. an uncertain excitation energy, :func:`mlmm.al.stages.select`); the
    counts stay those of the force σ. The most uncertain candidate is taken first, then
    farthest-point sampling on :func:`descriptor`.
    """
    if len(frames) != len(sigmas_ev_ang):
        raise ValueError(f"{len(frames)} frames but {len(sigmas_ev_ang)} σ values")
    cand, counts = trust_window(sigmas_ev_ang, sigma_lo, sigma_hi)
    if also is not None:
        if len(also) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(also)} extra-candidate flags")
        extra = np.flatnonzero(np.asarray(also, bool) & (np.asarray(sigmas_ev_ang, float) < sigma_hi))
        cand = np.union1d(cand, extra).astype(int)
    if len(cand) <= max_selected:
        return [int(i) for i in cand], counts
    feats = np.stack([descriptor(frames[i]) for i in cand])
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-12)
    start = int(np.argmax(np.asarray(sigmas_ev_ang)[cand]))
    picked = farthest_point_sampling(feats, max_selected, start=start)
    return sorted(int(cand[i]) for i in picked), counts


def validation_stalled(force_maes_qm: Sequence[float | None], tolerance: float) -> tuple[bool, str]:
    """Whether the held-out QM-force MAE (eV/Å) stopped improving over the last two models.

    ``force_maes_qm`` are the ``force_mae_qm`` of the ``models/it*/ensemble.json`` records of the
    models trained so far, oldest first. With fewer than two models there is no trend, which does
    not block convergence. Stalled means the newest MAE is not lower than the previous one by more
    than ``tolerance`` (relative).
    """
    maes = list(force_maes_qm[-2:])
    if len(maes) < 2 or None in maes:
        return True, "fewer than two evaluated models: no validation trend"
    previous, latest = maes
    stalled = latest >= (1.0 - tolerance) * previous
    verdict = "stopped improving" if stalled else "still improving"
    return stalled, f"held-out QM-force MAE {previous:.4f} -> {latest:.4f} eV/Å ({verdict}, tolerance {tolerance:.0%})"


def is_converged(counts: WindowCounts, any_breach: bool, converged_fraction: float, validation_stalled: bool = True) -> bool:
    """Converged when enough explored frames are accurate, no walker breached and validation stalled."""
    if counts.total == 0:
        return False
    return (counts.accurate / counts.total) >= converged_fraction and not any_breach and validation_stalled
