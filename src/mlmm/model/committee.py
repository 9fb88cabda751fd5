"""The committee as one batched model, and the lean QM term of MLP/MM MD built on it.

:class:`BatchedCommittee` evaluates every member of an ensemble in one forward and one backward
pass. The M members run as M frames of one graph: the QM region and its MM sites are replicated
M times (member m's atoms and pairs are the m-th contiguous block of every atom and pair tensor),
and in one copy of the members' own modules each linear layer is replaced by a grouped one
(:class:`GroupedDense`: one batched matmul applying member m's weights to block m), the element
embedding and element energies are indexed by ``Z + MAX_Z·m``, and each member's energy scale is
folded into its last energy layer. Everything else (schnetpack's SchNet/PaiNN message passing,
:mod:`mlmm.model.nn`'s field coupling, :func:`mlmm.model.field.embedded_coulomb`) runs unchanged
on the M-fold graph, so the network is defined once, by schnetpack and mlmm, and a committee costs
about the operations of one member. The index tensors (QM pairs, QM–MM pairs, embedding groups)
are built once per neighbour list (:class:`CommitteeGeometry`). Energies and forces equal those of
the members run one after another (``mlmm.model.ensemble.predict``) to floating-point precision
(tests/test_committee.py).

The QM pairs are the ordered pairs of QM atoms within the representation's cutoff plus a skin
when the index tensors are built (all pairs if no positions are given), and the QM–MM pairs all
(QM atom, listed MM site) pairs: the representations' cosine cutoff and the embedding weight are
exactly zero beyond their cutoffs (value and derivative), so pairs or sites beyond them add exact
zeros, and a pair beyond cutoff + skin cannot come within the cutoff before every atom has moved
half the skin (when the MD term rebuilds its list).

:class:`CommitteeMDTerm` is the QM term MD calls every step (:meth:`mlmm.potentials.QMMMCalculator.qm_energy_forces`):
full-system positions in, energy and forces on every atom out, with no Frame. The MM sites it
passes are the whole molecules within ``embedding.cutoff + skin`` of the QM region when the list
was built, each at the periodic image (an integer box shift) chosen then; the list is rebuilt when
any atom has moved more than half the skin, so every molecule with a nonzero weight is always on
it and the result is that of the Frame cut (:meth:`mlmm.system.System.cut_frame`) at every step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from schnetpack import properties
from schnetpack.model import NeuralNetworkPotential
from torch import nn

from mlmm.embedding import group_index
from mlmm.model.field import MMField, embedded_coulomb
from mlmm.model.nn import ARCHITECTURE_KEYS, MAX_Z, energy_head, pair_dipoles
from mlmm.settings import EmbeddingSettings
from mlmm.system import System

#: Extra distance (Å) beyond the embedding cutoff of the MD term's MM-site list; rebuilt when an atom moved half of it.
NEIGHBOUR_SKIN_ANG = 2.0
#: Kept between cutoff + skin and half the shortest box edge (Å), and the smallest skin worth a list (Å).
SKIN_MARGIN_ANG, MIN_SKIN_ANG = 0.05, 0.25
#: Per-member buffers that may differ between members (folded into the grouped module); all others must agree.
MEMBER_BUFFERS = ("atomref_ev", "energy_scale_ev")


@dataclass(frozen=True)
class CommitteeGeometry:
    """Index tensors of the M-fold graph of one QM region and its listed MM sites (module
    docstring), shared by every step until the list changes: atomic numbers ``Z`` offset by
    ``MAX_Z·m`` for member m, the ordered QM pairs ``idx_i``/``idx_j`` of every copy, each QM
    atom's member ``idx_m``, the (QM atom, MM site) pairs ``pair_qm``/``pair_mm`` within each copy
    with the site's charge ``pair_charges_e`` (e) and embedding group ``pair_group``
    (0..``n_groups``-1, distinct per copy), and the number of members ``n_frames``."""

    Z: torch.Tensor
    idx_i: torch.Tensor
    idx_j: torch.Tensor
    idx_m: torch.Tensor
    pair_qm: torch.Tensor
    pair_mm: torch.Tensor
    pair_charges_e: torch.Tensor
    pair_group: torch.Tensor
    n_groups: int
    n_frames: int


class GroupedDense(nn.Module):
    """M members' versions of one linear layer (schnetpack ``Dense``: activation(x Wᵀ + b)) as one
    batched matmul: the rows of ``x`` (first dimension) are M contiguous blocks, block m gets member
    m's weights. Weights are buffers: the grouped committee is for inference."""

    def __init__(self, layers: Sequence[nn.Linear], scale: Sequence[float] | None = None) -> None:
        super().__init__()
        s = torch.ones(len(layers)) if scale is None else torch.as_tensor(scale, dtype=torch.float64)
        weight = torch.stack([l.weight.detach() * float(f) for l, f in zip(layers, s)])  # (M, out, in)
        self.register_buffer("weight_t", weight.transpose(1, 2).contiguous())  # (M, in, out)
        bias = None if layers[0].bias is None else torch.stack([l.bias.detach() * float(f) for l, f in zip(layers, s)])
        self.register_buffer("bias", None if bias is None else bias[:, None, :])  # (M, 1, out)
        activation = getattr(layers[0], "activation", None)
        self.activation: Callable[[torch.Tensor], torch.Tensor] = nn.Identity() if activation is None else activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        M = self.weight_t.shape[0]
        xb = x.reshape(M, -1, x.shape[-1])
        y = torch.bmm(xb, self.weight_t) if self.bias is None else torch.baddbmm(self.bias, xb, self.weight_t)
        return self.activation(y.reshape(*x.shape[:-1], y.shape[-1]))


class _MemberEnergy(nn.Module):
    """The QM-region energy (eV) per frame from QM and MM positions (Å): a member's own
    representation and energy head, or (grouped, :func:`_grouped`) all members' as one module."""

    def __init__(self, model: NeuralNetworkPotential) -> None:
        super().__init__()
        self.representation = model.representation
        self.head = energy_head(model)
        field = [m for m in model.input_modules if isinstance(m, MMField)]
        self.field = (field[0].cutoff_ang, field[0].switch_width_ang) if field else None

    def forward(self, R_qm: torch.Tensor, R_mm: torch.Tensor, geometry: CommitteeGeometry) -> torch.Tensor:
        g = geometry
        r_ij = R_qm.index_select(0, g.idx_j) - R_qm.index_select(0, g.idx_i)
        if self.field is None:
            x = self.representation.qm_features(g.Z, r_ij, g.idx_i, g.idx_j, g.idx_m)
            e_i = self.head.atom_energies(x, g.Z, g.idx_m)
        else:
            v, e = embedded_coulomb(R_qm.index_select(0, g.pair_qm) - R_mm.index_select(0, g.pair_mm), g.pair_charges_e,
                                    g.pair_group, g.n_groups, *self.field)
            n_qm = R_qm.shape[0]
            V = torch.zeros(n_qm, dtype=v.dtype, device=v.device).index_add(0, g.pair_qm, v)
            E = torch.zeros((n_qm, 3), dtype=e.dtype, device=e.device).index_add(0, g.pair_qm, e)
            x = self.representation.qm_features(g.Z, r_ij, g.idx_i, g.idx_j, g.idx_m, V, E)
            pairs = {properties.idx_i: g.idx_i, properties.idx_j: g.idx_j, properties.Rij: r_ij}
            mu = pair_dipoles(self.head.dipole_net, self.head.cutoff_fn, x, pairs)
            e_i = self.head.atom_energies(x, g.Z, g.idx_m, V, E, mu)
        return torch.zeros(g.n_frames, dtype=e_i.dtype, device=e_i.device).index_add(0, g.idx_m, e_i)


def _signature(model: NeuralNetworkPotential) -> tuple:
    """What must agree for members to be grouped: architecture, QM charge, embedding, parameter
    shapes, the buffers other than :data:`MEMBER_BUFFERS` (radial basis, cutoffs), and parameters
    that live only in linear layers and element embeddings."""
    s = model.mlmm_settings
    member = _MemberEnergy(model)
    shapes = tuple((name, tuple(p.shape)) for name, p in member.named_parameters())
    buffers = tuple((name, tuple(b.reshape(-1).tolist())) for name, b in member.named_buffers()
                    if name.rsplit(".", 1)[-1] not in MEMBER_BUFFERS)
    groupable = all(isinstance(m, (nn.Linear, nn.Embedding)) or not list(m.parameters(recurse=False))
                    for m in member.modules())
    embeddings = {m.num_embeddings for m in member.modules() if isinstance(m, nn.Embedding)}
    return (tuple(s[k] for k in ARCHITECTURE_KEYS), s["qm_charge_e"], tuple(sorted(s["embedding"].items())), shapes,
            buffers, groupable and embeddings <= {MAX_Z})


def _grouped(models: Sequence[NeuralNetworkPotential]) -> _MemberEnergy:
    """One :class:`_MemberEnergy` that evaluates all ``models`` on the M-fold graph (module docstring)."""
    members = [_MemberEnergy(m) for m in models]
    grouped = copy.deepcopy(members[0])
    scales = [float(m.head.energy_scale_ev) for m in members]
    last_energy_layer = [mod for mod in grouped.head.energy_net.modules() if isinstance(mod, nn.Linear)][-1]
    for name, module in list(grouped.named_modules()):
        if not isinstance(module, (nn.Linear, nn.Embedding)):
            continue
        layers = [m.get_submodule(name) for m in members]
        if isinstance(module, nn.Embedding):
            new: nn.Module = nn.Embedding.from_pretrained(torch.cat([l.weight.detach() for l in layers]), freeze=True)
        else:  # the energy scale σ_m multiplies the last energy layer's output: fold it into its weights
            new = GroupedDense(layers, scales if module is last_energy_layer else None)
        parent, _, child = name.rpartition(".")
        setattr(grouped.get_submodule(parent) if parent else grouped, child, new)
    grouped.head.atomref_ev = torch.cat([m.head.atomref_ev for m in members])
    grouped.head.energy_scale_ev = torch.ones_like(grouped.head.energy_scale_ev)
    return grouped.requires_grad_(False)


class BatchedCommittee:
    """All members of an ensemble in one forward and one backward over the M-fold graph (module docstring).

    It holds a copy of the members' parameters and buffers taken at construction (for inference:
    build it again after changing a member).
    """

    def __init__(self, models: Sequence[NeuralNetworkPotential]) -> None:
        if not self.can_stack(models):
            raise ValueError("BatchedCommittee: the members differ in architecture, QM charge or embedding")
        self.module = _grouped(models)
        self.n_members = len(models)
        first = next(models[0].parameters())
        self.dtype, self.device = first.dtype, first.device
        #: The representation's QM–QM cutoff (Å): pairs beyond it add exact zeros.
        self.cutoff_ang = float(models[0].mlmm_settings["cutoff"])

    @staticmethod
    def can_stack(models: Sequence[NeuralNetworkPotential]) -> bool:
        """True if the members share architecture, QM charge, embedding, parameter shapes and fixed buffers."""
        signatures = {_signature(m) for m in models}
        return len(signatures) == 1 and next(iter(signatures))[-1]

    def geometry(self, Z_qm: np.ndarray, mm_charges_e: np.ndarray, mm_groups: np.ndarray,
                 R_qm_ang: np.ndarray | None = None, skin_ang: float = 0.0) -> CommitteeGeometry:
        """The index tensors of the M-fold graph for QM atoms ``Z_qm`` and MM sites with charges (e)
        and embedding groups (molecule ids, any integers); with QM positions ``R_qm_ang`` (Å) only
        the QM pairs within the representation's cutoff + ``skin_ang`` (valid until an atom has
        moved half the skin), else all ordered pairs."""
        n_qm, n_mm, M = len(Z_qm), len(mm_charges_e), self.n_members
        dev = self.device
        listed = ~np.eye(n_qm, dtype=bool)
        if R_qm_ang is not None:
            R = np.asarray(R_qm_ang, float)
            listed &= np.linalg.norm(R[:, None] - R[None, :], axis=-1) < self.cutoff_ang + skin_ang
        ii, jj = np.nonzero(listed)
        groups = torch.as_tensor(np.asarray(mm_groups, np.int64), device=dev)
        gid, n_groups = group_index(groups, torch.zeros(n_mm, dtype=torch.long, device=dev))
        pair_qm = torch.arange(n_qm, device=dev).repeat_interleave(n_mm)
        pair_mm = torch.arange(n_mm, device=dev).repeat(n_qm)
        member = torch.arange(M, device=dev)

        def copies(index: torch.Tensor, stride: int) -> torch.Tensor:
            """``index`` of one copy, repeated for the M copies with member m's block offset m·stride."""
            return (index[None, :] + stride * member[:, None]).reshape(-1)

        Z = torch.as_tensor(np.asarray(Z_qm, np.int64), device=dev)
        charges = torch.as_tensor(np.asarray(mm_charges_e, float), dtype=self.dtype, device=dev)
        return CommitteeGeometry(
            Z=copies(Z, MAX_Z),
            idx_i=copies(torch.as_tensor(ii, device=dev), n_qm), idx_j=copies(torch.as_tensor(jj, device=dev), n_qm),
            idx_m=member.repeat_interleave(n_qm),
            pair_qm=copies(pair_qm, n_qm), pair_mm=copies(pair_mm, n_mm), pair_charges_e=charges[pair_mm].repeat(M),
            pair_group=copies(gid[pair_mm], n_groups), n_groups=M * n_groups, n_frames=M,
        )

    def __call__(self, geometry: CommitteeGeometry, R_qm_ang: np.ndarray, R_mm_ang: np.ndarray
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Energies (M,) in eV and forces (M, n_qm, 3) on the QM atoms and (M, n_mm, 3) on the MM
        sites in eV/Å of every member at QM positions ``R_qm_ang`` and MM positions ``R_mm_ang``."""
        M = self.n_members
        r_qm = torch.as_tensor(R_qm_ang, dtype=self.dtype, device=self.device)
        r_mm = torch.as_tensor(R_mm_ang, dtype=self.dtype, device=self.device)
        R_qm = r_qm.expand(M, -1, -1).clone().requires_grad_()
        R_mm = r_mm.expand(M, -1, -1).clone().requires_grad_()
        energies = self.module(R_qm.reshape(-1, 3), R_mm.reshape(-1, 3), geometry)
        g_qm, g_mm = torch.autograd.grad(energies.sum(), (R_qm, R_mm), allow_unused=True)
        f_mm = torch.zeros_like(R_mm) if g_mm is None else -g_mm
        return energies.detach(), -g_qm, f_mm


def committee_results(energies: torch.Tensor, member_forces: torch.Tensor) -> dict[str, Any]:
    """The ensemble QM-term outputs from member energies (M,) eV and forces (M, n, 3) eV/Å:
    mean ``energy`` and ``forces``, ``sigma_force`` (max over atoms of the force spread, eV/Å),
    ``energies`` and ``member_forces`` (NumPy, float64)."""
    from mlmm.model.ensemble import force_spread

    return {
        "energy": float(energies.mean()),
        "forces": member_forces.mean(0).double().cpu().numpy(),
        "sigma_force": float(force_spread(member_forces).max()),
        "energies": energies.double().cpu().numpy(),
        "member_forces": member_forces.double().cpu().numpy(),
    }


class CommitteeMDTerm:
    """The ensemble's QM term on full-system positions, for the MD force callback (module docstring).

    Only for systems without link atoms and ensembles that learned the reference itself
    (``training.delta: none``) and can be stacked; :meth:`for_system` says None otherwise, and MD
    then cuts a Frame each step.
    """

    def __init__(self, system: System, committee: BatchedCommittee, embedding: EmbeddingSettings,
                 skin_ang: float = NEIGHBOUR_SKIN_ANG) -> None:
        self.system = system
        self.committee = committee
        self.embedding = embedding
        self.skin_ang = float(skin_ang)
        self.rebuilds = 0  #: neighbour-list builds so far
        self._reference: np.ndarray | None = None

    @classmethod
    def for_system(cls, system: System, ensemble: Any, embedding: EmbeddingSettings) -> "CommitteeMDTerm | None":
        """The lean term of ``ensemble`` on ``system``, or None where MD must cut Frames: link atoms,
        Δ-learned members, members that cannot be stacked, or a box too short for a skin.

        In a box the skin is at most half the shortest edge minus the cutoff (less
        :data:`SKIN_MARGIN_ANG`): then a listed molecule has one image within cutoff + skin, so the
        image chosen at the build is the one the Frame cut would choose whenever its weight is nonzero.
        """
        box = system.box_ang
        skin = NEIGHBOUR_SKIN_ANG
        if box is not None:
            skin = min(skin, 0.5 * float(np.min(box)) - float(embedding.cutoff) - SKIN_MARGIN_ANG)
        if system.n_link or ensemble.delta != "none" or ensemble.committee is None or skin < MIN_SKIN_ANG:
            return None
        return cls(system, ensemble.committee, embedding, skin)

    def _rebuild(self, pos: np.ndarray) -> None:
        """List the MM molecules within cutoff + skin of the QM region at ``pos`` with their image shifts."""
        s, n_qm = self.system, self.system.n_qm
        box = s.box_ang
        qm = s.whole_qm_positions(pos)
        placed, molecule_dist = s.placed_mm(pos, qm) if len(pos) > n_qm else (np.zeros((0, 3)), np.zeros(0))
        keep = np.flatnonzero(molecule_dist < self.embedding.cutoff + self.skin_ang)
        self._sites = n_qm + keep
        if box is None:
            self._shift_qm, self._shift_mm = np.zeros((n_qm, 3)), np.zeros((len(keep), 3))
        else:  # integer multiples of the box: the same image gives bit-identical placed positions
            self._shift_qm = box * np.round((qm - pos[:n_qm]) / box)
            self._shift_mm = box * np.round((placed[keep] - pos[self._sites]) / box)
        self._geometry = self.committee.geometry(s.atoms.numbers[:n_qm], s.charges_e[self._sites],
                                                 s.molecule_index[self._sites], qm, self.skin_ang)
        self._reference = pos.copy()
        self.rebuilds += 1

    def energy_forces(self, positions_ang: np.ndarray) -> tuple[float, np.ndarray, dict[str, Any]]:
        """QM-term energy (eV), forces on every atom of the full system (eV/Å, mlmm order) and
        ``sigma_force`` (eV/Å) and ``energies`` (per member, eV) at full-system ``positions_ang``."""
        pos = np.asarray(positions_ang, float)
        moved2 = None if self._reference is None else np.einsum("ij,ij->i", pos - self._reference, pos - self._reference)
        if moved2 is None or moved2.max() > (0.5 * self.skin_ang) ** 2:
            self._rebuild(pos)
        n_qm = self.system.n_qm
        energies, f_qm, f_mm = self.committee(self._geometry, pos[:n_qm] + self._shift_qm,
                                              pos[self._sites] + self._shift_mm)
        member_forces = torch.cat([f_qm, f_mm], dim=1)
        out = committee_results(energies, member_forces)
        forces = np.zeros((len(pos), 3))
        forces[:n_qm] = out["forces"][:n_qm]
        forces[self._sites] = out["forces"][n_qm:]
        return out["energy"], forces, {"sigma_force": out["sigma_force"], "energies": out["energies"]}
