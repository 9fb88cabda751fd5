"""Property model: the bright state's excitation energy (eV) and oscillator strength from
geometry + environment.

Kernel ridge regression (Gaussian kernel) on an invariant descriptor of a Frame: the inverse
QM–QM distances (upper triangle, QM atoms in their fixed order; 1/Å) and the electrostatic
potential of the MM charges at every QM atom (V = k Σ q/r, eV/e), so the model sees how the
environment shifts the transition. Features are standardised with the training statistics; the
kernel width and ridge strength are chosen on a validation split from a small grid, then the model
is refitted on train+validation. Deterministic for a seed. The oscillator strength prediction is
clipped at 0. Stored as a compressed .npz (training descriptors, weights, scalers).

Uncertainty: a committee of ``n_committee`` KRR models with the chosen width and ridge, each fitted
on a bootstrap resample of the training frames (its distinct frames); σ of a prediction is the
committee's standard deviation (eV for ΔE, unitless for f). It grows away from the training data,
like the kernel coverage, and is reported with every prediction; the validation metrics compare
it with the actual errors of a committee fitted on the training split only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms

from mlmm.frames import atomic_write, mm_charges, qm_mask
from mlmm.units import COULOMB_EV_ANGSTROM

TARGETS: tuple[str, ...] = ("excitation_energy_ev", "oscillator_strength")
WIDTH_FACTORS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
#: bootstrap committee members behind the σ of a prediction
N_COMMITTEE: int = 8
RIDGES: tuple[float, ...] = (1e-6, 1e-4, 1e-2)


def descriptor(frame: Atoms) -> np.ndarray:
    """Inverse QM–QM distances (1/Å) and MM potential at each QM atom (eV/e) of one Frame."""
    mask = qm_mask(frame)
    qm = frame.positions[mask]
    iu = np.triu_indices(len(qm), 1)
    inv = 1.0 / np.linalg.norm(qm[:, None] - qm[None], axis=2)[iu]
    mm = frame.positions[~mask]
    q = mm_charges(frame)[~mask]
    if len(q):
        esp = COULOMB_EV_ANGSTROM * (q[None, :] / np.linalg.norm(qm[:, None] - mm[None], axis=2)).sum(axis=1)
    else:
        esp = np.zeros(len(qm))
    return np.concatenate([inv, esp])


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T, 0.0)


@dataclass
class PropertyModel:
    """Fitted KRR model; ``predict(frames)`` -> (ΔE eV, f) arrays."""

    x_train: np.ndarray
    alpha: np.ndarray  # (n_train, 2) dual weights, one column per target
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    width: float
    ridge: float
    qm_symbols: tuple[str, ...]
    committee: np.ndarray | None = None  # (n_committee, n_train, 2) dual weights of the bootstrap members

    def _kernel(self, x: np.ndarray) -> np.ndarray:
        return np.exp(-_sqdist(x, self.x_train) / (2 * self.width**2))

    def predict_descriptors(self, d: np.ndarray) -> np.ndarray:
        x = (np.atleast_2d(d) - self.x_mean) / self.x_std
        y = self._kernel(x) @ self.alpha * self.y_std + self.y_mean
        y[:, 1] = np.maximum(y[:, 1], 0.0)
        return y

    def predict_with_sigma(self, frames: Sequence[Atoms]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ΔE eV, f, σ(ΔE) eV, σ(f)) of ``frames``; σ is the bootstrap committee's standard deviation
        (zeros if the model has no committee)."""
        de, f = self.predict(frames)
        if self.committee is None or len(self.committee) < 2:
            return de, f, np.zeros_like(de), np.zeros_like(f)
        x = (np.array([descriptor(fr) for fr in frames]) - self.x_mean) / self.x_std
        k = self._kernel(x)
        members = np.einsum("nt,mtk->mnk", k, self.committee) * self.y_std + self.y_mean
        members[..., 1] = np.maximum(members[..., 1], 0.0)
        sigma = members.std(axis=0, ddof=1)
        return de, f, sigma[:, 0], sigma[:, 1]

    def coverage(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Kernel value (0–1) to the nearest training frame: near 0 means extrapolation, where a
        KRR prediction falls back to the training mean."""
        x = (np.array([descriptor(f) for f in frames]) - self.x_mean) / self.x_std
        return self._kernel(x).max(axis=1)

    def predict(self, frames: Sequence[Atoms]) -> tuple[np.ndarray, np.ndarray]:
        """Bright excitation energies (eV) and oscillator strengths of ``frames``."""
        for fr in frames:
            symbols = tuple(np.asarray(fr.get_chemical_symbols())[qm_mask(fr)])
            if symbols != self.qm_symbols:
                raise ValueError(f"property model trained for QM atoms {self.qm_symbols}, got {symbols}")
        y = self.predict_descriptors(np.array([descriptor(f) for f in frames]))
        return y[:, 0], y[:, 1]

    def save(self, path: str | os.PathLike) -> None:
        def writer(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, x_train=self.x_train, alpha=self.alpha, x_mean=self.x_mean,
                                    x_std=self.x_std, y_mean=self.y_mean, y_std=self.y_std,
                                    width=self.width, ridge=self.ridge, qm_symbols=np.array(self.qm_symbols),
                                    committee=np.zeros((0,)) if self.committee is None else self.committee)

        atomic_write(path, writer)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PropertyModel":
        z = np.load(path)
        committee = z["committee"] if "committee" in z.files and z["committee"].ndim == 3 else None
        return cls(z["x_train"], z["alpha"], z["x_mean"], z["x_std"], z["y_mean"], z["y_std"],
                   float(z["width"]), float(z["ridge"]), tuple(str(s) for s in z["qm_symbols"]), committee)


def _fit(x: np.ndarray, y: np.ndarray, width: float, ridge: float) -> np.ndarray:
    k = np.exp(-_sqdist(x, x) / (2 * width**2))
    return np.linalg.solve(k + ridge * np.eye(len(x)), y)


def bootstrap_committee(x: np.ndarray, yn: np.ndarray, width: float, ridge: float, n_members: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Dual weights (n_members, n, n_targets) of KRR models fitted on bootstrap resamples of the
    rows of ``x`` (distinct rows of each resample; the other rows get weight 0)."""
    out = np.zeros((n_members, len(x), yn.shape[1]))
    for m in range(n_members):
        rows = np.unique(rng.integers(0, len(x), len(x)))
        out[m, rows] = _fit(x[rows], yn[rows], width, ridge)
    return out


def fit_property_model(
    frames: Sequence[Atoms], excitation_energies_ev: Sequence[float], oscillator_strengths: Sequence[float],
    *, val_fraction: float = 0.2, seed: int = 0, n_committee: int = N_COMMITTEE,
) -> tuple[PropertyModel, dict[str, float]]:
    """Fit on bright-state labels; returns the model (with a bootstrap committee of ``n_committee``
    members for σ) and validation MAEs of the chosen setting, with the mean committee σ there."""
    if len(frames) < 5:
        raise ValueError(f"property model needs at least 5 labelled frames, got {len(frames)}")
    d = np.array([descriptor(f) for f in frames])
    y = np.column_stack([np.asarray(excitation_energies_ev, float), np.asarray(oscillator_strengths, float)])
    x_mean, x_std = d.mean(0), d.std(0)
    x_std[x_std < 1e-12] = 1.0
    y_mean, y_std = y.mean(0), y.std(0)
    y_std[y_std < 1e-12] = 1.0
    x, yn = (d - x_mean) / x_std, (y - y_mean) / y_std
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = max(1, int(round(val_fraction * len(x))))
    val, train = order[:n_val], order[n_val:]
    base = float(np.sqrt(np.median(_sqdist(x[train], x[train])[np.triu_indices(len(train), 1)]))) or 1.0
    best = None
    for factor in WIDTH_FACTORS:
        for ridge in RIDGES:
            width = base * factor
            alpha = _fit(x[train], yn[train], width, ridge)
            pred = np.exp(-_sqdist(x[val], x[train]) / (2 * width**2)) @ alpha * y_std + y_mean
            mae = np.abs(pred - y[val]).mean(0)
            score = float((mae / y_std).sum())
            if best is None or score < best[0]:
                best = (score, width, ridge, mae)
    _, width, ridge, mae = best
    symbols = tuple(np.asarray(frames[0].get_chemical_symbols())[qm_mask(frames[0])])
    # σ on the validation split from a committee that has not seen it (same width and ridge)
    val_committee = bootstrap_committee(x[train], yn[train], width, ridge, n_committee, rng)
    k_val = np.exp(-_sqdist(x[val], x[train]) / (2 * width**2))
    val_members = np.einsum("nt,mtk->mnk", k_val, val_committee) * y_std + y_mean
    val_sigma = val_members.std(axis=0, ddof=1).mean(0) if n_committee > 1 else np.zeros(2)
    committee = bootstrap_committee(x, yn, width, ridge, n_committee, rng) if n_committee > 1 else None
    model = PropertyModel(x, _fit(x, yn, width, ridge), x_mean, x_std, y_mean, y_std, width, ridge, symbols,
                          committee)
    baseline = np.abs(y[val] - y[train].mean(0)).mean(0)
    metrics = {
        "n_frames": len(x), "n_val": int(n_val), "width": width, "ridge": ridge,
        "val_mae_excitation_energy_ev": float(mae[0]), "val_mae_oscillator_strength": float(mae[1]),
        "val_mae_mean_predictor_excitation_energy_ev": float(baseline[0]),
        "val_mae_mean_predictor_oscillator_strength": float(baseline[1]),
        "n_committee": int(n_committee),
        "val_mean_sigma_excitation_energy_ev": float(val_sigma[0]),
        "val_mean_sigma_oscillator_strength": float(val_sigma[1]),
    }
    return model, metrics
