"""Field-aware neural model of the bright state's excitation energy and transition dipole.

The representation and its environment coupling are those of the potential (:mod:`mlmm.model.nn`:
SchNet or PaiNN on the QM atoms, the invariant MM-field features V_i − V̄ and |E_i| in every atom
embedding, MM charges weighted by the system's embedding), so the model sees a changing
environment as the potential does. Two heads read the atom features x_i:

* ΔE = ΔE_0 + s · (1/N_QM) Σ_i ε(x_i) (eV): intensive, invariant under rotation, permutation of
  equivalent atoms and a uniform shift of the MM potential (V enters only as V − V̄).
* μ = Σ_i q_i r_i + Σ_ij m(x_i, x_j) f_cut(r_ij) r̂_ij (e·Å): transition charges q_i with
  Σ_i q_i = 0 per frame (a transition density integrates to zero, so μ does not depend on the
  origin) and pairwise atomic transition dipoles; both turn with the molecule (equivariant) and are
  sums over atoms (permutation invariant).

The sign of a transition dipole is a phase convention: the labels carry the phase of the run's one
state reference (:mod:`mlmm.labeling.excited`), and the loss is the smaller of |μ − μ_ref|² and
|μ + μ_ref|², so a label whose phase flipped near |μ·μ_ref| ≈ 0 does not pull the model across.
f = (2/3) ΔE |μ|² in atomic units (:func:`mlmm.labeling.excited.oscillator_strengths`). A committee of members (own seeds) gives σ(ΔE) and σ(f), each
scaled by a factor calibrated on a validation split that no member trains on (the same split
chooses every member's epoch by early stopping).
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np
import torch
from ase import Atoms
from schnetpack import properties
from schnetpack.atomistic import PairwiseDistances
from schnetpack.data.loader import _atoms_collate_fn
from schnetpack.model import NeuralNetworkPotential
from schnetpack.nn import CosineCutoff, GaussianRBF, build_mlp
from torch import nn

from mlmm.frames import qm_mask
from mlmm.labeling.excited import oscillator_strengths
from mlmm.model.field import QM_MASK, MMField, QMPairList, frame_to_inputs
from mlmm.model.nn import REPRESENTATIONS, FieldEmbedding, QMRepresentation, pair_dipoles, per_frame_mean
from mlmm.records import Record
from mlmm.settings import EmbeddingSettings

log = logging.getLogger(__name__)

#: Output keys of :class:`TransitionHead`: ΔE per frame (eV) and μ per frame (e·Å, 3 components).
EXCITATION_ENERGY = "excitation_energy"
TRANSITION_DIPOLE = "transition_dipole"


class TransitionHead(nn.Module):
    """ΔE (eV) and transition dipole μ (e·Å) of each frame from the QM atoms' features (module docstring)."""

    def __init__(self, n_atom_basis: int, cutoff_ang: float) -> None:
        super().__init__()
        self.model_outputs = [EXCITATION_ENERGY, TRANSITION_DIPOLE]
        self.energy_net = build_mlp(n_atom_basis, 1, n_layers=2)
        self.charge_net = build_mlp(n_atom_basis, 1, n_layers=2)
        self.dipole_net = build_mlp(2 * n_atom_basis, 1, n_layers=2)
        self.cutoff_fn = CosineCutoff(cutoff_ang)
        self.register_buffer("energy_mean_ev", torch.zeros(()))
        self.register_buffer("energy_scale_ev", torch.ones(()))
        self.register_buffer("dipole_scale_e_ang", torch.ones(()))

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        x = inputs["scalar_representation"]
        qm = torch.nonzero(inputs[QM_MASK] > 0.5).squeeze(-1)
        idx_m = inputs[properties.idx_m][qm]
        n_frames = inputs[properties.n_atoms].shape[0]
        eps = self.energy_net(x[qm]).squeeze(-1)
        inputs[EXCITATION_ENERGY] = self.energy_mean_ev + self.energy_scale_ev * per_frame_mean(eps, idx_m, n_frames)
        raw = self.charge_net(x[qm]).squeeze(-1)
        q = raw - per_frame_mean(raw, idx_m, n_frames)[idx_m]  # Σ_i q_i = 0 in every frame
        R = inputs[properties.R][qm]
        mu = torch.zeros((n_frames, 3), dtype=R.dtype, device=R.device).index_add(0, idx_m, q[:, None] * R)
        mu = mu.index_add(0, idx_m, pair_dipoles(self.dipole_net, self.cutoff_fn, x, inputs)[qm])
        inputs[TRANSITION_DIPOLE] = self.dipole_scale_e_ang * mu
        return inputs


@dataclass(frozen=True)
class NeuralPropertyArchitecture:
    """What defines a member: representation (``schnet`` | ``painn``), feature size, interactions,
    radial basis, QM–QM cutoff (Å) and the embedding of the labels' MM charges."""

    representation: str
    n_atom_basis: int
    n_interactions: int
    n_rbf: int
    cutoff: float
    embedding: EmbeddingSettings


def build_property_net(arch: NeuralPropertyArchitecture) -> NeuralNetworkPotential:
    """A member: the potential's field-aware representation with :class:`TransitionHead`."""
    if arch.representation not in REPRESENTATIONS:
        raise ValueError(f"property model representation {arch.representation!r}, expected one of {sorted(REPRESENTATIONS)}")
    n = int(arch.n_atom_basis)
    net = REPRESENTATIONS[arch.representation](
        n_atom_basis=n, n_interactions=int(arch.n_interactions),
        radial_basis=GaussianRBF(n_rbf=int(arch.n_rbf), cutoff=float(arch.cutoff)),
        cutoff_fn=CosineCutoff(float(arch.cutoff)), electronic_embeddings=[FieldEmbedding(n)],
    )
    return NeuralNetworkPotential(
        representation=QMRepresentation(net),
        input_modules=[PairwiseDistances(), MMField(float(arch.embedding.cutoff), float(arch.embedding.switch_width))],
        output_modules=[TransitionHead(n, float(arch.cutoff))],
    )


def frame_inputs(frames: Sequence[Atoms], cutoff_ang: float) -> list[Dict[str, torch.Tensor]]:
    """Per-frame schnetpack inputs (float64) with QM-only pairs within ``cutoff_ang`` (Å), built once."""
    pairs = QMPairList(cutoff_ang)
    return [frame_to_inputs(f, pairs, torch.float64) for f in frames]


def batch_inputs(frames: Sequence[Atoms], cutoff_ang: float) -> Dict[str, torch.Tensor]:
    """One schnetpack batch (float64) of Frames (see :func:`frame_inputs`)."""
    return _atoms_collate_fn(frame_inputs(frames, cutoff_ang))


def phase_free_dipole_error(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per frame min(|μ − μ_ref|², |μ + μ_ref|²) (e²Å²): the error up to the transition dipole's sign."""
    return torch.minimum(((pred - ref) ** 2).sum(-1), ((pred + ref) ** 2).sum(-1))


class NeuralPropertyModel:
    """A committee of :func:`build_property_net` members with calibrated σ (see module docstring)."""

    def __init__(self, members: Sequence[NeuralNetworkPotential], arch: NeuralPropertyArchitecture,
                 qm_symbols: tuple[str, ...], sigma_scale: tuple[float, float] = (1.0, 1.0)) -> None:
        self.members = list(members)
        self.arch = arch
        self.qm_symbols = tuple(qm_symbols)
        self.sigma_scale = tuple(float(s) for s in sigma_scale)

    def member_outputs(self, frames: Sequence[Atoms], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """ΔE (members, frames) in eV and μ (members, frames, 3) in e·Å of every member."""
        for fr in frames:
            symbols = tuple(np.asarray(fr.get_chemical_symbols())[qm_mask(fr)])
            if symbols != self.qm_symbols:
                raise ValueError(f"property model trained for QM atoms {self.qm_symbols}, got {symbols}")
        de, mu = [], []
        for start in range(0, len(frames), batch_size):
            inputs = batch_inputs(frames[start:start + batch_size], self.arch.cutoff)
            with torch.no_grad():
                outs = [m(dict(inputs)) for m in self.members]
            de.append(np.stack([o[EXCITATION_ENERGY].numpy() for o in outs]))
            mu.append(np.stack([o[TRANSITION_DIPOLE].numpy() for o in outs]))
        return np.concatenate(de, axis=1), np.concatenate(mu, axis=1)

    def predict_with_sigma(self, frames: Sequence[Atoms]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ΔE eV, f, σ(ΔE) eV, σ(f), μ e·Å) of ``frames``: committee means, calibrated committee
        standard deviations, and the mean transition dipole (members aligned to the first's phase)."""
        de_m, mu_m = self.member_outputs(frames)
        sign = np.sign(np.einsum("mfk,fk->mf", mu_m, mu_m[0]))
        sign[sign == 0] = 1.0
        mu_m = mu_m * sign[..., None]
        f_m = oscillator_strengths(de_m.reshape(-1), mu_m.reshape(-1, 3)).reshape(de_m.shape)
        ddof = 1 if len(self.members) > 1 else 0
        return (de_m.mean(0), f_m.mean(0), de_m.std(0, ddof=ddof) * self.sigma_scale[0],
                f_m.std(0, ddof=ddof) * self.sigma_scale[1], mu_m.mean(0))

    def save(self, path: str | os.PathLike) -> None:
        torch.save({"members": self.members, "arch": self.arch, "qm_symbols": self.qm_symbols,
                    "sigma_scale": self.sigma_scale}, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NeuralPropertyModel":
        data = torch.load(path, weights_only=False, map_location="cpu")
        return cls(data["members"], data["arch"], data["qm_symbols"], data["sigma_scale"])


@dataclass
class NeuralPropertyMetrics(Record):
    """``excited/property_model.json`` of the neural model: frames used for training and for the
    validation split (never trained on; it chooses each member's epoch and calibrates σ), the
    committee's validation MAE of ΔE (eV), f and μ (e·Å, up to its sign) against the training-mean
    predictor's, the epochs each member ran, and the σ scale factors."""

    n_train: int
    n_validation: int
    n_members: int
    representation: str
    val_mae_excitation_energy_ev: float
    val_mae_oscillator_strength: float
    val_mae_transition_dipole_e_ang: float
    val_mae_mean_predictor_excitation_energy_ev: float
    val_mae_mean_predictor_oscillator_strength: float
    epochs: list[int]
    sigma_scale_excitation_energy: float
    sigma_scale_oscillator_strength: float


def _train_one(net: NeuralNetworkPotential, train_inputs: Sequence[Dict[str, torch.Tensor]], y_train: tuple[torch.Tensor, torch.Tensor],
               val: Dict[str, torch.Tensor], y_val: tuple[torch.Tensor, torch.Tensor], *, epochs: int, lr: float,
               batch_size: int, patience: int, dipole_weight: float, seed: int) -> tuple[NeuralNetworkPotential, int]:
    """Adam on ΔE MSE + dipole_weight × phase-free μ MSE (normalised by the training spreads); the
    state of the epoch with the lowest validation loss is kept."""
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    head = next(m for m in net.output_modules if isinstance(m, TransitionHead))
    de_scale, mu_scale = float(head.energy_scale_ev), float(head.dipole_scale_e_ang)

    def loss_of(out: Dict[str, torch.Tensor], y: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        e = ((out[EXCITATION_ENERGY] - y[0]) / de_scale) ** 2
        m = phase_free_dipole_error(out[TRANSITION_DIPOLE], y[1]) / mu_scale**2
        return (e + dipole_weight * m).mean()

    best, best_state, best_epoch, waited = np.inf, copy.deepcopy(net.state_dict()), 0, 0
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(train_inputs), generator=generator)
        for start in range(0, len(train_inputs), batch_size):
            rows = order[start:start + batch_size].tolist()
            batch = _atoms_collate_fn([train_inputs[i] for i in rows])
            opt.zero_grad()
            loss_of(net(batch), (y_train[0][rows], y_train[1][rows])).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_of(net(dict(val)), y_val))
        if val_loss < best:
            best, best_state, best_epoch, waited = val_loss, copy.deepcopy(net.state_dict()), epoch, 0
        else:
            waited += 1
            if waited >= patience:
                break
    net.load_state_dict(best_state)
    return net.eval(), best_epoch


def fit_neural_property_model(
    frames: Sequence[Atoms], excitation_energies_ev: Sequence[float], transition_dipoles_e_ang: Sequence[Sequence[float]],
    strengths: Sequence[float], arch: NeuralPropertyArchitecture, *, n_members: int, epochs: int, lr: float,
    batch_size: int, patience: int, dipole_weight: float, val_fraction: float, seed: int,
) -> tuple[NeuralPropertyModel, NeuralPropertyMetrics]:
    """Train the committee on bright-state labels (ΔE eV, μ e·Å in the reference's phase, oscillator
    ``strengths`` for the metrics); a ``val_fraction`` split (at least 2 frames, drawn with ``seed``) is held out of every
    member. Member k starts from seed ``seed + k``. Float64 throughout (small data, exact gradients)."""
    n = len(frames)
    n_val = max(2, int(round(val_fraction * n)))
    if n - n_val < 4:
        raise ValueError(f"neural property model needs at least {n_val + 4} labelled frames, got {n}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    de = torch.as_tensor(np.asarray(excitation_energies_ev, float))
    mu = torch.as_tensor(np.asarray(transition_dipoles_e_ang, float).reshape(n, 3))
    osc = np.asarray(strengths, float)
    train_inputs = frame_inputs([frames[i] for i in train_idx], arch.cutoff)
    val_inputs = batch_inputs([frames[i] for i in val_idx], arch.cutoff)
    y_train = (de[train_idx], mu[train_idx])
    y_val = (de[val_idx], mu[val_idx])
    members, epochs_run = [], []
    for k in range(n_members):
        torch.manual_seed(seed + k)
        net = build_property_net(arch).double()
        head = next(m for m in net.output_modules if isinstance(m, TransitionHead))
        head.energy_mean_ev.fill_(float(y_train[0].mean()))
        head.energy_scale_ev.fill_(float(y_train[0].std()) or 1.0)
        head.dipole_scale_e_ang.fill_(float(torch.linalg.vector_norm(y_train[1], dim=-1).mean()) or 1.0)
        net, best_epoch = _train_one(net, train_inputs, y_train, val_inputs, y_val, epochs=epochs, lr=lr,
                                     batch_size=batch_size, patience=patience, dipole_weight=dipole_weight,
                                     seed=seed + k)
        members.append(net)
        epochs_run.append(best_epoch)
        log.info("property member %d: best epoch %d", k, best_epoch)
    symbols = tuple(np.asarray(frames[0].get_chemical_symbols())[qm_mask(frames[0])])
    model = NeuralPropertyModel(members, arch, symbols)
    val_frames = [frames[i] for i in val_idx]
    de_p, f_p, s_de, s_f, mu_p = model.predict_with_sigma(val_frames)
    err_de, err_f = np.abs(de_p - de[val_idx].numpy()), np.abs(f_p - osc[val_idx])
    mu_err = np.sqrt(phase_free_dipole_error(torch.as_tensor(mu_p), y_val[1]).numpy())

    def scale(err: np.ndarray, sigma: np.ndarray) -> float:
        ok = sigma > 1e-12
        return float(np.median(err[ok] / sigma[ok]) / 0.6745) if ok.any() else 1.0

    model.sigma_scale = (scale(err_de, s_de), scale(err_f, s_f))
    metrics = NeuralPropertyMetrics(
        n_train=len(train_idx), n_validation=len(val_idx), n_members=n_members, representation=arch.representation,
        val_mae_excitation_energy_ev=float(err_de.mean()), val_mae_oscillator_strength=float(err_f.mean()),
        val_mae_transition_dipole_e_ang=float(mu_err.mean()),
        val_mae_mean_predictor_excitation_energy_ev=float(np.abs(de[val_idx].numpy() - float(y_train[0].mean())).mean()),
        val_mae_mean_predictor_oscillator_strength=float(np.abs(osc[val_idx] - osc[train_idx].mean()).mean()),
        epochs=epochs_run, sigma_scale_excitation_energy=model.sigma_scale[0],
        sigma_scale_oscillator_strength=model.sigma_scale[1],
    )
    return model, metrics
