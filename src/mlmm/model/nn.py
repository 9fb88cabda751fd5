"""The field-aware potential (SchNet or PaiNN features) for the QM region in electrostatic embedding.

E = Σ_{i∈QM} [σ e_i + E_ref(Z_i)] + Σ_i q_i V_i − Σ_i μ_i·E_i − ½ Σ_i α_i |E_i|²   (eV)

x_i are the scalar features of a schnetpack representation of the QM atoms (``training.representation``:
SchNet, or the equivariant message passing of PaiNN; neighbours: QM atoms only) whose embeddings also
receive the invariant field features (V_i − V̄, |E_i|), V̄ the mean potential over the frame's QM atoms;
e_i, q_i (e), α_i ≥ 0 (e·Å²/V) are read out of x_i and μ_i = Σ_j m(x_i, x_j) f_cut(r_ij) r̂_ij (e·Å)
is an equivariant atomic dipole. The charges are shifted per frame so that Σ_i q_i equals the QM
region's total charge Q (``qm_charge_e``). Together these make the model gauge-correct: a uniform
shift ΔV of the MM potential changes E by exactly Q·ΔV, as it changes the reference QM/MM energy,
so the model cannot fit a spurious coupling to the (cutoff-dependent, noisy) absolute potential.
V_i (eV/e) and E_i (V/Å) come from the embedding-weighted MM charges (:class:`mlmm.model.field.MMField`), so
``forces = -dE/dR`` (eV/Å) act on the QM atoms and the MM sites. E_ref (eV per element) and σ (eV) are buffers fitted on the training
set (:func:`fit_energy_reference`); schnetpack's RemoveOffsets is not used because ``_n_atoms``
counts MM sites.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from schnetpack import properties
from schnetpack.atomistic import Forces, PairwiseDistances
from schnetpack.model import NeuralNetworkPotential
from schnetpack.nn import CosineCutoff, GaussianRBF, build_mlp
from schnetpack.representation import PaiNN, SchNet
from torch import nn

from mlmm.model.field import FIELD_POTENTIAL, FIELD_VECTOR, QM_MASK, MMField
from mlmm.settings import EmbeddingSettings, TrainingSettings

#: The training settings that define a model (kept on it as ``model.mlmm_settings`` with its
#: ``embedding`` and ``qm_charge_e``; lengths in Å).
ARCHITECTURE_KEYS: tuple[str, ...] = ("representation", "n_atom_basis", "n_interactions", "n_rbf", "cutoff", "use_field",
                                      "delta")
#: ``training.representation`` → the schnetpack representation class (same arguments, same field embedding).
REPRESENTATIONS: dict[str, type[nn.Module]] = {"schnet": SchNet, "painn": PaiNN}
MAX_Z = 100
#: Smoothing of |E| in the invariant field feature sqrt(|E|² + ε²) (V/Å), so it is differentiable at E = 0.
FIELD_NORM_EPS = 1.0e-2


def per_frame_mean(values: torch.Tensor, idx_m: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Mean of per-atom ``values`` over the atoms of each frame (one value per frame)."""
    total = torch.zeros(n_frames, dtype=values.dtype, device=values.device).index_add(0, idx_m, values)
    count = torch.zeros(n_frames, dtype=values.dtype, device=values.device).index_add(0, idx_m, torch.ones_like(values))
    return total / count


def frame_mean(values: torch.Tensor, idx_m: torch.Tensor) -> torch.Tensor:
    """Mean of per-atom ``values`` over the atoms of each frame, broadcast back to the atoms."""
    n_frames = int(idx_m.max()) + 1 if idx_m.numel() else 0
    return per_frame_mean(values, idx_m, n_frames)[idx_m]


def pair_dipoles(dipole_net: nn.Module, cutoff_fn: nn.Module, x: torch.Tensor,
                 inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Equivariant atomic dipoles μ_i = Σ_j m(x_i, x_j) f_cut(r_ij) r̂_ij (e·Å; zero on atoms without
    pairs) over the representation's QM pairs; ``dipole_net`` maps the pair's concatenated features to m."""
    idx_i, idx_j = inputs[properties.idx_i], inputs[properties.idx_j]
    r_ij = inputs[properties.Rij]
    d_ij = torch.linalg.vector_norm(r_ij, dim=-1)
    m_ij = dipole_net(torch.cat([x[idx_i], x[idx_j]], -1)).squeeze(-1) * cutoff_fn(d_ij)
    mu = torch.zeros((x.shape[0], 3), dtype=r_ij.dtype, device=r_ij.device)
    return mu.index_add(0, idx_i, (m_ij / d_ij)[:, None] * r_ij)


class FieldEmbedding(nn.Module):
    """Additive atom embedding from the invariant field features (V_i − V̄ in eV/e, |E_i| in V/Å).

    Plugs into SchNet or PaiNN as an ``electronic_embeddings`` entry (called as ``f(x, inputs)``), so the MM
    environment shapes the SchNet features of every QM atom, not only the explicit coupling terms.
    """

    def __init__(self, n_atom_basis: int) -> None:
        super().__init__()
        self.net = build_mlp(2, n_atom_basis, n_hidden=n_atom_basis, n_layers=2, activation=F.silu)

    def forward(self, x: torch.Tensor, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        e2 = (inputs[FIELD_VECTOR] ** 2).sum(-1)
        features = torch.stack([inputs[FIELD_POTENTIAL], torch.sqrt(e2 + FIELD_NORM_EPS**2)], dim=-1)
        return self.net(features)


class QMRepresentation(nn.Module):
    """Runs the representation (SchNet or PaiNN) on the QM atoms only; writes per-atom
    ``scalar_representation`` (zeros on MM sites). PaiNN's vector features stay internal: the
    equivariant output is the atomic dipole of :class:`FieldCoupledEnergy`."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Models saved before the representation became a choice hold it as ``schnet``."""
        modules = state.get("_modules", {})
        if "schnet" in modules:
            modules["net"] = modules.pop("schnet")
        super().__setstate__(state)

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        is_qm = inputs[QM_MASK] > 0.5
        qm = torch.nonzero(is_qm).squeeze(-1)
        compact = torch.cumsum(is_qm.long(), 0) - 1  # full atom index -> index among QM atoms
        has_field = FIELD_POTENTIAL in inputs
        x_qm = self.qm_features(inputs[properties.Z][qm], inputs[properties.Rij], compact[inputs[properties.idx_i]],
                                compact[inputs[properties.idx_j]], inputs[properties.idx_m][qm],
                                inputs[FIELD_POTENTIAL][qm] if has_field else None,
                                inputs[FIELD_VECTOR][qm] if has_field else None)
        x = torch.zeros((is_qm.shape[0], x_qm.shape[1]), dtype=x_qm.dtype, device=x_qm.device)
        inputs["scalar_representation"] = x.index_copy(0, qm, x_qm)
        return inputs

    def qm_features(self, Z: torch.Tensor, r_ij: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                    idx_m: torch.Tensor, V: torch.Tensor | None = None, E: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar features (n_qm, n_atom_basis) of the QM atoms alone: atomic numbers ``Z``, pair
        vectors ``r_ij`` (Å) of the pairs ``idx_i``/``idx_j`` (indices among the QM atoms), frames
        ``idx_m`` and, for the field-aware model, the MM potential ``V`` (eV/e) and field ``E`` (V/Å)."""
        sub = {properties.Z: Z, properties.Rij: r_ij, properties.idx_i: idx_i, properties.idx_j: idx_j}
        if V is not None:
            # potential relative to the frame's QM mean: a uniform shift of V carries no information
            sub[FIELD_POTENTIAL] = V - frame_mean(V, idx_m)
            sub[FIELD_VECTOR] = E
        return self.net(sub)["scalar_representation"]


class FieldCoupledEnergy(nn.Module):
    """Energy (eV) of the QM region in the MM field: atomic energies plus charge, dipole and
    polarisability couplings to V_i and E_i (see module docstring); sums over QM atoms per frame."""

    def __init__(
        self,
        n_atom_basis: int,
        cutoff_ang: float,
        energy_key: str = properties.energy,
        use_field: bool = True,
        qm_charge_e: float = 0.0,
    ) -> None:
        super().__init__()
        self.energy_key = energy_key
        self.use_field = bool(use_field)
        self.qm_charge_e = float(qm_charge_e)
        self.model_outputs = [energy_key]
        self.energy_net = build_mlp(n_atom_basis, 1, n_layers=2)
        self.charge_net = build_mlp(n_atom_basis, 1, n_layers=2)
        self.polarizability_net = build_mlp(n_atom_basis, 1, n_layers=2)
        self.dipole_net = build_mlp(2 * n_atom_basis, 1, n_layers=2)
        self.cutoff_fn = CosineCutoff(cutoff_ang)
        self.register_buffer("atomref_ev", torch.zeros(MAX_Z))  # E_ref(Z), eV
        self.register_buffer("energy_scale_ev", torch.ones(()))  # σ, eV

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        x = inputs["scalar_representation"]
        qm = torch.nonzero(inputs[QM_MASK] > 0.5).squeeze(-1)
        idx_m_qm = inputs[properties.idx_m][qm]
        if self.use_field:
            mu = pair_dipoles(self.dipole_net, self.cutoff_fn, x, inputs)[qm]  # e·Å
            e_i = self.atom_energies(x[qm], inputs[properties.Z][qm], idx_m_qm, inputs[FIELD_POTENTIAL][qm],
                                     inputs[FIELD_VECTOR][qm], mu)
        else:
            e_i = self.atom_energies(x[qm], inputs[properties.Z][qm], idx_m_qm)
        n_frames = inputs[properties.n_atoms].shape[0]
        energy = torch.zeros(n_frames, dtype=e_i.dtype, device=e_i.device)
        inputs[self.energy_key] = energy.index_add(0, idx_m_qm, e_i)
        return inputs

    def atom_energies(self, x_qm: torch.Tensor, Z_qm: torch.Tensor, idx_m_qm: torch.Tensor,
                      V: torch.Tensor | None = None, E: torch.Tensor | None = None,
                      mu: torch.Tensor | None = None) -> torch.Tensor:
        """Energy terms e_i (eV) of the QM atoms (module docstring) from their features ``x_qm``,
        atomic numbers, frames ``idx_m_qm`` and, with the field, the MM potential ``V`` (eV/e), field
        ``E`` (V/Å) and atomic dipoles ``mu`` (e·Å) at them; without the field (ablation: the QM
        region in vacuum, blind to the MM environment) the atomic energies alone."""
        atomic = self.energy_net(x_qm).squeeze(-1) * self.energy_scale_ev + self.atomref_ev[Z_qm]
        if not self.use_field:
            return atomic
        raw = self.charge_net(x_qm).squeeze(-1)
        n_qm = torch.bincount(idx_m_qm)[idx_m_qm].to(raw.dtype)  # QM atoms in each atom's frame
        charge = raw - frame_mean(raw, idx_m_qm) + self.qm_charge_e / n_qm  # Σ_i q_i = Q per frame
        alpha = F.softplus(self.polarizability_net(x_qm).squeeze(-1))
        return atomic + charge * V - (mu * E).sum(-1) - 0.5 * alpha * (E**2).sum(-1)


#: Output keys of :class:`SplitForces` (eV/Å).
FORCES_QM = "forces_qm"
FORCES_MM = "forces_mm"


class SplitForces(nn.Module):
    """Forces on the QM atoms and on the MM sites as separate outputs (eV/Å).

    MM sites outnumber QM atoms ~30:1 in a Frame and carry far smaller forces, so one MSE over all
    atoms is dominated by the MM count and under-trains the QM forces; separate outputs get
    separate loss weights.
    """

    def __init__(self) -> None:
        super().__init__()
        self.model_outputs = [FORCES_QM, FORCES_MM]

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        qm = inputs[QM_MASK] > 0.5
        inputs[FORCES_QM] = inputs[properties.forces][qm]
        inputs[FORCES_MM] = inputs[properties.forces][~qm]
        return inputs


def split_force_targets(frame: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Add the ``forces_qm``/``forces_mm`` targets of :class:`SplitForces` to one frame's inputs."""
    qm = frame[QM_MASK] > 0.5
    frame[FORCES_QM] = frame[properties.forces][qm]
    frame[FORCES_MM] = frame[properties.forces][~qm]
    return frame


def build_model(settings: TrainingSettings, *, qm_charge_e: int, embedding: EmbeddingSettings) -> NeuralNetworkPotential:
    """Field-aware NeuralNetworkPotential (``settings.representation``: SchNet or PaiNN): outputs ``energy`` (eV) and ``forces`` (eV/Å, all atoms; also split into ``forces_qm``/``forces_mm``).

    The :data:`ARCHITECTURE_KEYS` of ``settings``, the QM region's total charge ``qm_charge_e``
    (e) and the ``embedding`` whose weighted charges the field input sees (``system.embedding``,
    the one the labels were computed in) are kept on the model as ``model.mlmm_settings`` so a
    saved model knows its cutoffs (config key names), its embedding and its Δ baseline.
    ``use_field: False`` builds the ablation model: same SchNet and atomic energies, no MM field
    input at all (zero forces on MM sites). Models saved without ``representation`` are SchNet.
    """
    s: dict[str, Any] = {k: getattr(settings, k) for k in ARCHITECTURE_KEYS}
    s["qm_charge_e"] = int(qm_charge_e)
    s["embedding"] = embedding.to_dict()
    n = int(s["n_atom_basis"])
    use_field = bool(s["use_field"])
    if s["representation"] not in REPRESENTATIONS:
        raise ValueError(f"training.representation: {s['representation']!r}, expected one of {sorted(REPRESENTATIONS)}")
    net = REPRESENTATIONS[s["representation"]](
        n_atom_basis=n,
        n_interactions=int(s["n_interactions"]),
        radial_basis=GaussianRBF(n_rbf=int(s["n_rbf"]), cutoff=float(s["cutoff"])),
        cutoff_fn=CosineCutoff(float(s["cutoff"])),
        electronic_embeddings=[FieldEmbedding(n)] if use_field else [],
    )
    inputs: list[nn.Module] = [PairwiseDistances()]
    if use_field:
        inputs.append(MMField(float(embedding.cutoff), float(embedding.switch_width)))
    model = NeuralNetworkPotential(
        representation=QMRepresentation(net),
        input_modules=inputs,
        output_modules=[
            FieldCoupledEnergy(n, float(s["cutoff"]), use_field=use_field, qm_charge_e=float(s["qm_charge_e"])),
            Forces(),
            SplitForces(),
        ],
    )
    model.mlmm_settings = s
    return model


def energy_head(model: NeuralNetworkPotential) -> FieldCoupledEnergy:
    """The model's :class:`FieldCoupledEnergy` module (holds E_ref and σ)."""
    return next(m for m in model.output_modules if isinstance(m, FieldCoupledEnergy))


def fit_energy_reference(model: NeuralNetworkPotential, frames: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, Any]:
    """Fit E_ref(Z) (eV) by least squares over the QM atoms of ``frames`` and σ = std of the residual per QM atom.

    ``frames`` are schnetpack per-frame dicts with ``_atomic_numbers``, ``qm_mask`` and ``energy``.
    σ has a floor of 0.01 eV so tiny or single-frame sets do not collapse the atomic-energy scale.
    Returns {"atomref_ev": {Z: eV}, "energy_scale_ev": σ}.
    """
    qm_numbers = [f[properties.Z][f[QM_MASK] > 0.5].numpy() for f in frames]
    elements = np.unique(np.concatenate(qm_numbers))
    counts = np.array([[np.sum(z == e) for e in elements] for z in qm_numbers], float)
    energies = np.array([float(f[properties.energy].reshape(-1)[0]) for f in frames])
    coef, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    per_atom_residual = (energies - counts @ coef) / counts.sum(1)
    sigma = max(float(np.std(per_atom_residual)), 1.0e-2)
    head = energy_head(model)
    with torch.no_grad():
        head.atomref_ev.zero_()
        head.atomref_ev[torch.as_tensor(elements)] = torch.as_tensor(coef, dtype=head.atomref_ev.dtype)
        head.energy_scale_ev.fill_(sigma)
    return {"atomref_ev": {int(e): float(c) for e, c in zip(elements, coef)}, "energy_scale_ev": sigma}
