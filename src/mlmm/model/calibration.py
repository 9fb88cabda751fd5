"""Calibration of the ensemble uncertainty σ against the true force error on held-out frames.

Per frame: σ = max over atoms of the per-atom norm of the member force std (eV/Å, as in MD) and
err = max over atoms of the norm of the ensemble-mean force error (eV/Å). Reported:

* Spearman ρ(σ, err): does σ rank frames by their error (what the AL trust window relies on)?
* the **calibration map** f: raw σ → expected max force error (eV/Å), a centred isotonic
  regression of err on σ (knots ``map_sigma``/``map_error``, starting at the origin, strictly
  increasing so that it has an inverse), linear in between and continued beyond the last knot
  with the slope ``scale``; with ``al.calibrated_thresholds`` the AL trust levels compare f(σ).
* ``scale``: the factor s minimising Σ (s σ_k − err_k)² (least squares through the origin,
  s = Σ σ err / Σ σ²), the map's slope beyond its data; ``scale_median`` = median of err/σ.
* a cross-fitted **conformal** bound: frames are split into ``folds`` (deterministic, by σ
  rank), each fold's error ratio err/f(σ) is scored with the map fitted on the other folds, and
  ``conformal_q`` is the conformal quantile of these scores at ``conformal_level``, so that
  err ≤ ``conformal_q``·f(σ) for about that fraction of new frames; ``coverage_oof`` is the
  fraction of frames inside the bound computed without them (the quantile of the other folds).
* ``reliability``: the out-of-fold predictions f(σ) in equal-count bins, mean predicted vs mean
  observed error per bin (eV/Å); a calibrated map lies on the diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import isotonic_regression
from scipy.stats import spearmanr

from mlmm.records import Record, optional

#: Fewer frames than this give no ρ and the identity map (scale 1, uncalibrated).
MIN_FRAMES = 3
#: Nominal coverage of the conformal bound err ≤ q·f(σ).
COVERAGE = 0.9
#: Folds of the cross-fitted conformal scores (fewer when there are fewer frames).
FOLDS = 5
#: Bins of the reliability curve, and the fewest frames per bin.
RELIABILITY_BINS = 10
MIN_PER_BIN = 5


@dataclass(frozen=True)
class SigmaMap:
    """Strictly increasing map raw σ (eV/Å) → expected max force error (eV/Å).

    Piecewise linear through the knots (``sigma``, ``error``), slope ``scale`` beyond the last
    knot; without knots it is ``scale``·σ (the identity for scale 1, and the map of calibration
    records written before the knots existed). σ is a norm: inputs below the first knot clamp.
    """

    scale: float = 1.0
    sigma: tuple[float, ...] = ()
    error: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"scale must be a positive number, got {self.scale}")
        s, e = np.asarray(self.sigma, float), np.asarray(self.error, float)
        if s.shape != e.shape:
            raise ValueError(f"map knots: {s.size} σ and {e.size} error values")
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(e)) and np.all(np.diff(s) > 0) and np.all(np.diff(e) > 0)):
            raise ValueError("map knots must be finite and strictly increasing in σ and error")

    def apply(self, sigma: ArrayLike) -> np.ndarray | float:
        """Expected max force error (eV/Å) of raw σ (eV/Å), elementwise."""
        x = np.asarray(sigma, float)
        if not self.sigma:
            out = self.scale * x
        else:
            last_s, last_e = self.sigma[-1], self.error[-1]
            out = np.where(x <= last_s, np.interp(x, self.sigma, self.error), last_e + self.scale * (x - last_s))
        return float(out) if out.ndim == 0 else out

    def inverse(self, error: ArrayLike) -> np.ndarray | float:
        """Raw σ (eV/Å) whose expected max force error is ``error`` (eV/Å), elementwise."""
        y = np.asarray(error, float)
        if not self.sigma:
            out = y / self.scale
        else:
            last_s, last_e = self.sigma[-1], self.error[-1]
            out = np.where(y <= last_e, np.interp(y, self.error, self.sigma), last_s + (y - last_e) / self.scale)
        return float(out) if out.ndim == 0 else out


@dataclass
class Calibration(Record):
    """``models/it{i}/calibration.json``: σ (eV/Å) against the max force error (eV/Å) on held-out frames.

    :func:`calibrate` fills the statistics and the map; the calibration stage adds ``iteration``,
    the per-frame ``sigma_force``/``max_force_error`` and a description of the ``frames``.
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
    map_sigma: list[float] | None = optional()
    map_error: list[float] | None = optional()
    folds: int | None = optional()
    conformal_level: float | None = optional()
    conformal_q: float | None = optional()
    coverage_oof: float | None = optional()
    reliability: dict[str, list[float] | list[int]] | None = optional()
    iteration: int | None = optional()
    sigma_force: list[float] | None = optional()
    max_force_error: list[float] | None = optional()
    frames: str | None = optional()

    @classmethod
    def identity(cls, note: str = "identity: raw σ") -> "Calibration":
        """The map f(σ) = σ (trust levels compare raw σ)."""
        return cls(n_frames=0, note=note)

    def sigma_map(self) -> SigmaMap:
        """The calibration map (checked: a positive scale and strictly increasing knots)."""
        return SigmaMap(float(self.scale), tuple(self.map_sigma or ()), tuple(self.map_error or ()))

    def apply(self, sigma: ArrayLike) -> np.ndarray | float:
        """Expected max force error (eV/Å) of raw σ (eV/Å)."""
        return self.sigma_map().apply(sigma)

    def inverse(self, error: ArrayLike) -> np.ndarray | float:
        """Raw σ (eV/Å) with expected max force error ``error`` (eV/Å)."""
        return self.sigma_map().inverse(error)

    def upper_bound(self, sigma: ArrayLike) -> np.ndarray | float:
        """Conformal upper bound of the max force error (eV/Å) at ``conformal_level``: q·f(σ)."""
        if self.conformal_q is None:
            raise ValueError(f"no conformal bound: {self.note or 'not fitted'}")
        return self.conformal_q * self.sigma_map().apply(sigma)


def fit_map(sigmas: np.ndarray, errors: np.ndarray) -> SigmaMap:
    """Centred isotonic regression of err on σ (eV/Å) from the origin, slope ``scale`` beyond.

    Isotonic regression gives blocks of frames with one mean error each; a knot per block at its
    mean σ (plus the origin) makes the map piecewise linear instead of a step function. Errors
    of successive knots that isotonic regression leaves equal are raised by a relative 1e-9 so
    that the map is strictly increasing (invertible). A sample without σ·err > 0 gets scale 1.
    """
    order = np.argsort(sigmas, kind="stable")
    s, e = sigmas[order], errors[order]
    unique_s, index, counts = np.unique(s, return_inverse=True, return_counts=True)
    mean_e = np.bincount(index, weights=e) / counts
    fit = isotonic_regression(mean_e, weights=counts)
    bounds = fit.blocks
    knot_s = [float(np.average(unique_s[a:b], weights=counts[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]
    knot_e = [float(fit.x[a]) for a in bounds[:-1]]
    if knot_s[0] > 0:
        knot_s, knot_e = [0.0, *knot_s], [0.0, *knot_e]
    step = 1e-9 * max(max(knot_e), 1e-12)
    for k in range(1, len(knot_e)):
        knot_e[k] = max(knot_e[k], knot_e[k - 1] + step)
    num, den = float(np.dot(s, e)), float(np.dot(s, s))
    return SigmaMap(num / den if num > 0 else 1.0, tuple(knot_s), tuple(knot_e))


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ⌈(n+1)·level⌉-th smallest of n scores (split conformal); the largest if n is too small."""
    k = int(np.ceil((len(scores) + 1) * level))
    return float(np.sort(scores)[min(k, len(scores)) - 1])


def fold_of(sigmas: np.ndarray, folds: int) -> np.ndarray:
    """Fold index of each frame: σ rank modulo ``folds`` (deterministic, each fold spans all σ)."""
    rank = np.empty(len(sigmas), int)
    rank[np.argsort(sigmas, kind="stable")] = np.arange(len(sigmas))
    return rank % folds


def calibrate(sigmas: Sequence[float], errors: Sequence[float], coverage: float = COVERAGE,
              folds: int = FOLDS) -> Calibration:
    """Spearman ρ, the calibration map, its conformal bound and reliability for σ (eV/Å) vs max force error (eV/Å)."""
    s = np.asarray(sigmas, float)
    e = np.asarray(errors, float)
    if s.shape != e.shape:
        raise ValueError(f"sigmas {s.shape} and errors {e.shape} differ in shape")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must lie in (0, 1), got {coverage}")
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    out = Calibration(
        n_frames=int(len(s)),
        sigma_mean=float(s.mean()) if len(s) else None,
        error_mean=float(e.mean()) if len(e) else None,
    )
    if len(s) < MIN_FRAMES or not np.any(s > 0) or not np.any(e > 0):
        out.note = f"uncalibrated: {len(s)} frame(s) with σ > 0 and error > 0 needed ≥ {MIN_FRAMES}"
        return out
    if np.ptp(s) > 0 and np.ptp(e) > 0:
        rho, p = spearmanr(s, e)
        out.spearman_rho, out.spearman_p = float(rho), float(p)
    full = fit_map(s, e)
    out.scale = full.scale
    out.map_sigma, out.map_error = list(full.sigma), list(full.error)
    positive = s > 0
    out.scale_median = float(np.median(e[positive] / s[positive]))

    k = min(folds, len(s))
    fold = fold_of(s, k)
    predicted = np.empty_like(s)
    for j in range(k):
        held = fold == j
        predicted[held] = fit_map(s[~held], e[~held]).apply(s[held])
    scores = e / np.maximum(predicted, 1e-12)
    inside = np.zeros(len(s), bool)
    for j in range(k):  # each fold against the quantile of the others: coverage measured out of fold
        inside[fold == j] = scores[fold == j] <= conformal_quantile(scores[fold != j], coverage)
    out.folds, out.conformal_level = k, float(coverage)
    out.conformal_q = conformal_quantile(scores, coverage)
    out.coverage_oof = float(inside.mean())
    if int(np.ceil((len(s) + 1) * coverage)) > len(s):
        out.note = f"conformal bound on {len(s)} frames: the largest ratio, coverage {coverage} not guaranteed"

    bins = np.array_split(np.argsort(predicted, kind="stable"), max(1, min(RELIABILITY_BINS, len(s) // MIN_PER_BIN)))
    out.reliability = {
        "predicted": [float(predicted[b].mean()) for b in bins],
        "observed": [float(e[b].mean()) for b in bins],
        "n": [int(len(b)) for b in bins],
    }
    return out
