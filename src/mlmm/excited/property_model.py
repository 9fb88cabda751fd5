"""Property model: the bright state's excitation energy (eV) and oscillator strength from
geometry + environment.

Kernel ridge regression (Gaussian kernel) on an invariant descriptor of a Frame in five groups:
inverse QM–QM distances (1/Å) between heavy atoms, heavy atom–H and H–H; the electrostatic
potential of the embedding-weighted MM charges at every QM atom (V = k Σ q w/r, eV/e), so the
model sees how the environment shifts the transition; and cos φ of every proper torsion along the QM region's
covalent bonds (the twist that closes a π→π* gap shows in distances only weakly, through
1–4 contacts). Features are standardised with the training statistics, then each group is
scaled by its own weight. The group weights, the kernel width and the ridge are chosen by k-fold
cross-validation on a small grid (an H–H distance can matter less than a C=C bond for the gap;
a uniform weighting lets the many H distances decide the kernel), then the model is refitted on
all frames. Deterministic for a seed. The oscillator strength prediction is clipped at 0. Stored
as a compressed .npz (training descriptors, weights, scalers, torsion list).

Uncertainty: a committee of ``n_committee`` KRR models with the chosen hyperparameters, each fitted
on a bootstrap resample of the training frames (its distinct frames). The committee spread grows
away from the training data but underestimates the error (the members share the kernel), so σ of
a prediction (eV for ΔE, unitless for f) is the spread times a factor calibrated on the held-out
folds: median(|error| / spread) / 0.6745, what a Gaussian error of standard deviation σ would give.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.data import covalent_radii

from mlmm.embedding import weighted_charges
from mlmm.frames import atomic_write, qm_mask
from mlmm.records import Record
from mlmm.units import COULOMB_EV_ANGSTROM

TARGETS: tuple[str, ...] = ("excitation_energy_ev", "oscillator_strength")
#: descriptor groups, in feature order
GROUPS: tuple[str, ...] = ("heavy_heavy", "heavy_h", "h_h", "mm_potential", "torsions")
#: candidate weight of each group (heavy–heavy distances are the fixed reference)
GROUP_WEIGHTS: dict[str, tuple[float, ...]] = {
    "heavy_heavy": (1.0,), "heavy_h": (0.0, 0.3, 1.0), "h_h": (0.0, 0.3, 1.0),
    "mm_potential": (0.3, 1.0, 3.0), "torsions": (0.0, 1.0, 3.0),
}
#: kernel width candidates, in units of the median distance between training descriptors
WIDTH_FACTORS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
RIDGES: tuple[float, ...] = (1e-6, 1e-4, 1e-2, 1e-1)
#: bootstrap committee members behind the σ of a prediction
N_COMMITTEE: int = 8
#: two atoms are bonded (for the torsion list) below this factor times the sum of covalent radii
BOND_FACTOR: float = 1.25


def torsion_list(frame: Atoms) -> np.ndarray:
    """Proper torsions (i, j, k, l) along covalent bonds of the QM region (indices among the QM
    atoms), from covalent radii at this frame's geometry; shape (n, 4)."""
    mask = qm_mask(frame)
    pos = frame.positions[mask]
    radii = covalent_radii[frame.numbers[mask]]
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    bonded = (dist < BOND_FACTOR * (radii[:, None] + radii[None, :])) & ~np.eye(len(pos), dtype=bool)
    out = []
    for j, k in zip(*np.nonzero(np.triu(bonded))):
        for i in np.nonzero(bonded[j])[0]:
            for l in np.nonzero(bonded[k])[0]:
                if i != k and l != j and i != l:
                    out.append((i, j, k, l))
    return np.array(out, dtype=int).reshape(-1, 4)


def _cos_torsions(pos: np.ndarray, torsions: np.ndarray) -> np.ndarray:
    """cos φ of each torsion (i, j, k, l) of positions ``pos`` (Å); 0 where a bond angle is linear."""
    if not len(torsions):
        return np.zeros(0)
    i, j, k, l = torsions.T
    axis = pos[k] - pos[j]
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    a, b = pos[i] - pos[j], pos[l] - pos[k]
    a -= (a * axis).sum(1, keepdims=True) * axis
    b -= (b * axis).sum(1, keepdims=True) * axis
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norm > 1e-8, (a * b).sum(1) / np.maximum(norm, 1e-8), 0.0)


def feature_groups(qm_symbols: Sequence[str], n_torsions: int) -> np.ndarray:
    """Index into :data:`GROUPS` of every descriptor feature."""
    heavy = np.asarray(qm_symbols) != "H"
    iu = np.triu_indices(len(heavy), 1)
    n_heavy_pair = heavy[iu[0]].astype(int) + heavy[iu[1]]
    pairs = np.select([n_heavy_pair == 2, n_heavy_pair == 1], [0, 1], 2)
    return np.concatenate([pairs, np.full(len(heavy), 3), np.full(n_torsions, 4)]).astype(int)


def descriptor(frame: Atoms, torsions: np.ndarray) -> np.ndarray:
    """Inverse QM–QM distances (1/Å, upper triangle), MM potential at each QM atom (eV/e) and cos φ
    of ``torsions`` (see :func:`torsion_list`) of one Frame."""
    mask = qm_mask(frame)
    qm = frame.positions[mask]
    iu = np.triu_indices(len(qm), 1)
    inv = 1.0 / np.linalg.norm(qm[:, None] - qm[None], axis=2)[iu]
    mm = frame.positions[~mask]
    q = weighted_charges(frame)[~mask]
    if len(q):
        esp = COULOMB_EV_ANGSTROM * (q[None, :] / np.linalg.norm(qm[:, None] - mm[None], axis=2)).sum(axis=1)
    else:
        esp = np.zeros(len(qm))
    return np.concatenate([inv, esp, _cos_torsions(qm, torsions)])


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def _gauss(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-_sqdist(a, b) / (2 * width**2))


@dataclass
class PropertyModel:
    """Fitted KRR model; ``predict(frames)`` -> (ΔE eV, f) arrays."""

    x_train: np.ndarray  # standardised, group-weighted training descriptors
    alpha: np.ndarray  # (n_train, 2) dual weights, one column per target
    x_mean: np.ndarray
    x_std: np.ndarray
    scale: np.ndarray  # per-feature group weight
    y_mean: np.ndarray
    y_std: np.ndarray
    width: float
    ridge: float
    qm_symbols: tuple[str, ...]
    torsions: np.ndarray  # (n, 4) QM-atom indices
    committee: np.ndarray | None = None  # (n_committee, n_train, 2) dual weights of the bootstrap members
    sigma_scale: np.ndarray | None = None  # (2,) calibration of the committee spread (see module docstring)

    def features(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Standardised, group-weighted descriptors of ``frames`` (QM atoms checked against training)."""
        for fr in frames:
            symbols = tuple(np.asarray(fr.get_chemical_symbols())[qm_mask(fr)])
            if symbols != self.qm_symbols:
                raise ValueError(f"property model trained for QM atoms {self.qm_symbols}, got {symbols}")
        d = np.array([descriptor(fr, self.torsions) for fr in frames])
        return (d - self.x_mean) / self.x_std * self.scale

    def _kernel(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Kernel of ``frames`` to the training frames, (n_frames, n_train)."""
        return _gauss(self.features(frames), self.x_train, self.width)

    def _predict_kernel(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = k @ self.alpha * self.y_std + self.y_mean
        return y[:, 0], np.maximum(y[:, 1], 0.0)

    def predict(self, frames: Sequence[Atoms]) -> tuple[np.ndarray, np.ndarray]:
        """Bright excitation energies (eV) and oscillator strengths of ``frames``."""
        return self._predict_kernel(self._kernel(frames))

    def predict_with_sigma(self, frames: Sequence[Atoms]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ΔE eV, f, σ(ΔE) eV, σ(f)) of ``frames``; σ is the bootstrap committee's standard deviation
        times its calibration factor (zeros if the model has no committee)."""
        k = self._kernel(frames)  # descriptors and kernel once, for the prediction and the committee
        de, f = self._predict_kernel(k)
        if self.committee is None or len(self.committee) < 2:
            return de, f, np.zeros_like(de), np.zeros_like(f)
        sigma = _committee_sigma(k, self.committee, self.y_mean, self.y_std) * (
            1.0 if self.sigma_scale is None else self.sigma_scale)
        return de, f, sigma[:, 0], sigma[:, 1]

    def coverage(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Kernel value (0–1) to the nearest training frame: near 0 means extrapolation, where a
        KRR prediction falls back to the training mean."""
        return self._kernel(frames).max(axis=1)

    def group_weights(self) -> dict[str, float]:
        """Weight of each descriptor group (those with features)."""
        groups = feature_groups(self.qm_symbols, len(self.torsions))
        return {GROUPS[g]: float(self.scale[groups == g][0]) for g in np.unique(groups)}

    def save(self, path: str | os.PathLike) -> None:
        def writer(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, x_train=self.x_train, alpha=self.alpha, x_mean=self.x_mean,
                                    x_std=self.x_std, scale=self.scale, y_mean=self.y_mean, y_std=self.y_std,
                                    width=self.width, ridge=self.ridge, qm_symbols=np.array(self.qm_symbols),
                                    torsions=self.torsions,
                                    committee=np.zeros((0,)) if self.committee is None else self.committee,
                                    sigma_scale=np.ones(2) if self.sigma_scale is None else self.sigma_scale)

        atomic_write(path, writer)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PropertyModel":
        z = np.load(path)
        if "torsions" not in z.files:
            raise ValueError(f"{path}: property model from an older mlmm (no torsion features); rerun its rule")
        committee = z["committee"] if z["committee"].ndim == 3 else None
        return cls(z["x_train"], z["alpha"], z["x_mean"], z["x_std"], z["scale"], z["y_mean"], z["y_std"],
                   float(z["width"]), float(z["ridge"]), tuple(str(s) for s in z["qm_symbols"]),
                   z["torsions"].astype(int), committee, z["sigma_scale"])


def _committee_sigma(k: np.ndarray, committee: np.ndarray, y_mean: np.ndarray, y_std: np.ndarray) -> np.ndarray:
    """Standard deviation over committee members (rows of ``k`` = kernel to the training frames)."""
    members = np.einsum("nt,mtk->mnk", k, committee) * y_std + y_mean
    members[..., 1] = np.maximum(members[..., 1], 0.0)
    return members.std(axis=0, ddof=1)


def _fit(x: np.ndarray, y: np.ndarray, width: float, ridge: float) -> np.ndarray:
    return np.linalg.solve(_gauss(x, x, width) + ridge * np.eye(len(x)), y)


def bootstrap_committee(x: np.ndarray, yn: np.ndarray, width: float, ridge: float, n_members: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Dual weights (n_members, n, n_targets) of KRR models fitted on bootstrap resamples of the
    rows of ``x`` (distinct rows of each resample; the other rows get weight 0)."""
    out = np.zeros((n_members, len(x), yn.shape[1]))
    for m in range(n_members):
        rows = np.unique(rng.integers(0, len(x), len(x)))
        out[m, rows] = _fit(x[rows], yn[rows], width, ridge)
    return out


def _cv_errors(x: np.ndarray, yn: np.ndarray, folds: list[np.ndarray], width: float) -> np.ndarray:
    """Mean absolute cross-validation error (normalised targets) per ridge in :data:`RIDGES`, shape
    (n_ridges, n_targets); one eigendecomposition per fold serves every ridge."""
    k = _gauss(x, x, width)
    err = np.zeros((len(RIDGES), yn.shape[1]))
    for val in folds:
        train = np.setdiff1d(np.arange(len(x)), val)
        evals, evecs = np.linalg.eigh(k[np.ix_(train, train)])
        proj = evecs.T @ yn[train]
        for r, ridge in enumerate(RIDGES):
            alpha = evecs @ (proj / (evals + ridge)[:, None])
            err[r] += np.abs(k[np.ix_(val, train)] @ alpha - yn[val]).sum(0)
    return err / len(x)


@dataclass
class PropertyModelMetrics(Record):
    """``excited/property_model.json`` (the spectra summary's ``property_model``): the
    cross-validation of the chosen setting of :func:`fit_property_model`.

    Training frames, folds, the kernel width (in units of the weighted standardised descriptor) and
    ridge, the weight of each descriptor group, the number of torsions; CV MAE of the bright ΔE (eV)
    and f (unitless), the same for predicting the training mean; the committee size, its mean spread
    on the held-out folds (eV, unitless) and the σ scale factors calibrated there.
    """

    n_frames: int
    cv_folds: int
    width: float
    ridge: float
    group_weights: dict[str, float]
    n_torsions: int
    cv_mae_excitation_energy_ev: float
    cv_mae_oscillator_strength: float
    cv_mae_mean_predictor_excitation_energy_ev: float
    cv_mae_mean_predictor_oscillator_strength: float
    n_committee: int
    cv_mean_committee_spread_excitation_energy_ev: float
    cv_mean_committee_spread_oscillator_strength: float
    sigma_scale_excitation_energy: float
    sigma_scale_oscillator_strength: float


def fit_property_model(
    frames: Sequence[Atoms], excitation_energies_ev: Sequence[float], oscillator_strengths: Sequence[float],
    *, cv_folds: int = 5, seed: int = 0, n_committee: int = N_COMMITTEE,
) -> tuple[PropertyModel, PropertyModelMetrics]:
    """Fit on bright-state labels; returns the model (with a bootstrap committee of ``n_committee``
    members for σ) and the cross-validation metrics of the chosen setting."""
    if len(frames) < max(5, cv_folds):
        raise ValueError(f"property model needs at least {max(5, cv_folds)} labelled frames, got {len(frames)}")
    symbols = tuple(np.asarray(frames[0].get_chemical_symbols())[qm_mask(frames[0])])
    torsions = torsion_list(frames[0])
    groups = feature_groups(symbols, len(torsions))
    d = np.array([descriptor(f, torsions) for f in frames])
    y = np.column_stack([np.asarray(excitation_energies_ev, float), np.asarray(oscillator_strengths, float)])
    x_mean, x_std = d.mean(0), d.std(0)
    varies = x_std > 1e-12
    x_std[~varies] = 1.0
    y_mean, y_std = y.mean(0), y.std(0)
    y_std[y_std < 1e-12] = 1.0
    z, yn = (d - x_mean) / x_std, (y - y_mean) / y_std
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(len(z)), cv_folds)
    present = [g for g in range(len(GROUPS)) if varies[groups == g].any()]  # e.g. no MM potential in vacuum
    best = None
    for combo in itertools.product(*(GROUP_WEIGHTS[GROUPS[g]] for g in present)):
        weights = np.zeros(len(GROUPS))
        weights[present] = combo
        if not weights.any():
            continue
        x = z * weights[groups]
        pair = _sqdist(x, x)[np.triu_indices(len(x), 1)]
        base = float(np.sqrt(np.median(pair))) or 1.0
        for factor in WIDTH_FACTORS:
            errors = _cv_errors(x, yn, folds, base * factor)
            for r, ridge in enumerate(RIDGES):
                score = float(errors[r].sum())
                if best is None or score < best[0]:
                    best = (score, weights, base * factor, ridge, errors[r] * y_std)
    _, weights, width, ridge, cv_mae = best
    x = z * weights[groups]
    # σ on held-out folds from committees that did not see them (same hyperparameters)
    sigma_out, err_out = np.zeros_like(y), np.zeros_like(y)
    for val in folds:
        train = np.setdiff1d(np.arange(len(x)), val)
        k_val = _gauss(x[val], x[train], width)
        err_out[val] = k_val @ _fit(x[train], yn[train], width, ridge) * y_std + y_mean - y[val]
        if n_committee > 1:
            sigma_out[val] = _committee_sigma(k_val, bootstrap_committee(x[train], yn[train], width, ridge,
                                                                       n_committee, rng), y_mean, y_std)
    committee = bootstrap_committee(x, yn, width, ridge, n_committee, rng) if n_committee > 1 else None
    spread_ok = sigma_out > 1e-12
    sigma_scale = np.array([np.median(np.abs(err_out[spread_ok[:, t], t]) / sigma_out[spread_ok[:, t], t]) / 0.6745
                            if spread_ok[:, t].any() else 1.0 for t in range(2)])
    model = PropertyModel(x, _fit(x, yn, width, ridge), x_mean, x_std, weights[groups], y_mean, y_std, width,
                          ridge, symbols, torsions, committee, sigma_scale)
    mean_predictor = np.concatenate([np.abs(y[val] - np.delete(y, val, 0).mean(0)) for val in folds]).mean(0)
    metrics = PropertyModelMetrics(
        n_frames=len(x), cv_folds=int(cv_folds), width=width, ridge=ridge,
        group_weights=model.group_weights(), n_torsions=len(torsions),
        cv_mae_excitation_energy_ev=float(cv_mae[0]), cv_mae_oscillator_strength=float(cv_mae[1]),
        cv_mae_mean_predictor_excitation_energy_ev=float(mean_predictor[0]),
        cv_mae_mean_predictor_oscillator_strength=float(mean_predictor[1]),
        n_committee=int(n_committee),
        cv_mean_committee_spread_excitation_energy_ev=float(sigma_out[:, 0].mean()),
        cv_mean_committee_spread_oscillator_strength=float(sigma_out[:, 1].mean()),
        sigma_scale_excitation_energy=float(sigma_scale[0]), sigma_scale_oscillator_strength=float(sigma_scale[1]),
    )
    return model, metrics
