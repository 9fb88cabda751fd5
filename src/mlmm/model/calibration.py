"""Calibration of the ensemble uncertainty σ against the true force error on held-out frames.

Per frame: σ = max over atoms of the per-atom norm of the member force std (eV/Å, as in MD) and
err = max over atoms of the norm of the ensemble-mean force error (eV/Å). Reported:

* Spearman ρ(σ, err): does σ rank frames by their error (what the AL trust window relies on)?
* ``scale``: the factor s minimising Σ (s σ_k − err_k)² (least squares through the origin,
  s = Σ σ err / Σ σ²), so s·σ estimates the max force error in eV/Å; the AL selection may
  multiply its σ thresholds' inputs by it (``al.calibrated_thresholds``).
* ``scale_median``: median of err/σ, a robust cross-check of ``scale``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.stats import spearmanr

from mlmm.records import Record, optional

#: Fewer frames than this give no ρ and scale 1 (uncalibrated).
MIN_FRAMES = 3


@dataclass
class Calibration(Record):
    """``models/it{i}/calibration.json``: σ (eV/Å) against the max force error (eV/Å) on held-out frames.

    :func:`calibrate` fills the statistics; the calibration stage adds ``iteration``, the
    per-frame ``sigma_force``/``max_force_error`` and a description of the ``frames``.
    """

    n_frames: int
    spearman_rho: float | None = None
    spearman_p: float | None = None
    scale: float = 1.0
    scale_median: float | None = None
    sigma_mean: float | None = None
    error_mean: float | None = None
    units: dict[str, str] = field(default_factory=lambda: {"sigma": "eV/Ang", "error": "eV/Ang"})
    note: str | None = optional()
    iteration: int | None = optional()
    sigma_force: list[float] | None = optional()
    max_force_error: list[float] | None = optional()
    frames: str | None = optional()


def calibrate(sigmas: Sequence[float], errors: Sequence[float]) -> Calibration:
    """Spearman ρ, its p-value and the scale factor of σ (eV/Å) vs max force error (eV/Å)."""
    s = np.asarray(sigmas, float)
    e = np.asarray(errors, float)
    if s.shape != e.shape:
        raise ValueError(f"sigmas {s.shape} and errors {e.shape} differ in shape")
    out = Calibration(
        n_frames=int(len(s)),
        sigma_mean=float(s.mean()) if len(s) else None,
        error_mean=float(e.mean()) if len(e) else None,
    )
    if len(s) < MIN_FRAMES or not np.any(s > 0):
        out.note = f"uncalibrated: {len(s)} frame(s) with σ > 0 needed ≥ {MIN_FRAMES}"
        return out
    if np.ptp(s) > 0 and np.ptp(e) > 0:
        rho, p = spearmanr(s, e)
        out.spearman_rho, out.spearman_p = float(rho), float(p)
    out.scale = float(np.dot(s, e) / np.dot(s, s))
    positive = s > 0
    out.scale_median = float(np.median(e[positive] / s[positive]))
    return out
