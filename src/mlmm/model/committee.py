"""The committee as one batched model, and the lean QM term of MLP/MM MD built on it.

:class:`BatchedCommittee` evaluates every member of an ensemble in one forward and one backward
pass: the members' parameters are stacked (``torch.func.stack_module_state``) and the members'
own schnetpack modules run under ``torch.func.vmap`` (``functional_call``), so the network is
defined once, by schnetpack and :mod:`mlmm.model.nn`. The index tensors (QM pairs, QM–MM pairs,
embedding groups) are built once per neighbour list (:class:`CommitteeGeometry`) and shared by all
members; the field at the QM atoms comes from :func:`mlmm.model.field.embedded_coulomb`, the one
definition the trained models see. Energies and forces equal those of the members run one after
another (``mlmm.model.ensemble.predict``) to floating-point precision (tests/test_committee.py).

The QM pairs are all ordered pairs of QM atoms and the QM–MM pairs all (QM atom, listed MM site)
pairs: the representations' cosine cutoff and the embedding weight are exactly zero beyond their
cutoffs (value and derivative), so pairs or sites beyond them add exact zeros.

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
from typing import Any, Sequence

import numpy as np
import torch
from schnetpack import properties
from schnetpack.model import NeuralNetworkPotential
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from mlmm.embedding import group_index
from mlmm.model.field import MMField, embedded_coulomb
from mlmm.model.nn import ARCHITECTURE_KEYS, energy_head, pair_dipoles
from mlmm.settings import EmbeddingSettings
from mlmm.system import System

#: Extra distance (Å) beyond the embedding cutoff of the MD term's MM-site list; rebuilt when an atom moved half of it.
NEIGHBOUR_SKIN_ANG = 2.0
#: Kept between cutoff + skin and half the shortest box edge (Å), and the smallest skin worth a list (Å).
SKIN_MARGIN_ANG, MIN_SKIN_ANG = 0.05, 0.25


@dataclass(frozen=True)
class CommitteeGeometry:
    """Index tensors of one QM region and its listed MM sites, shared by every member and every
    step until the list changes: atomic numbers ``Z`` of the QM atoms, all ordered QM pairs
    ``idx_i``/``idx_j``, the QM atoms' frame ``idx_m`` (all 0: one frame), the MM charges (e), all (QM atom, MM site) pairs ``pair_qm``/``pair_mm``,
    each pair's embedding group ``pair_group`` (0..``n_groups``-1)."""

    Z: torch.Tensor
    idx_i: torch.Tensor
    idx_j: torch.Tensor
    idx_m: torch.Tensor
    mm_charges_e: torch.Tensor
    pair_qm: torch.Tensor
    pair_mm: torch.Tensor
    pair_group: torch.Tensor
    n_groups: int


class _MemberEnergy(nn.Module):
    """One member's QM-region energy (eV) from QM and MM positions (Å), the module whose stacked
    parameters :class:`BatchedCommittee` calls; it holds the member's own representation and
    energy head."""

    def __init__(self, model: NeuralNetworkPotential) -> None:
        super().__init__()
        self.representation = model.representation
        self.head = energy_head(model)
        field = [m for m in model.input_modules if isinstance(m, MMField)]
        self.field = (field[0].cutoff_ang, field[0].switch_width_ang) if field else None

    def forward(self, R_qm: torch.Tensor, R_mm: torch.Tensor, geometry: CommitteeGeometry) -> torch.Tensor:
        g = geometry
        r_ij = R_qm[g.idx_j] - R_qm[g.idx_i]
        if self.field is None:
            x = self.representation.qm_features(g.Z, r_ij, g.idx_i, g.idx_j, g.idx_m)
            return self.head.atom_energies(x, g.Z, g.idx_m).sum()
        v, e = embedded_coulomb(R_qm[g.pair_qm] - R_mm[g.pair_mm], g.mm_charges_e[g.pair_mm], g.pair_group, g.n_groups,
                                *self.field)
        n_qm = R_qm.shape[0]
        V = torch.zeros(n_qm, dtype=v.dtype, device=v.device).index_add(0, g.pair_qm, v)
        E = torch.zeros((n_qm, 3), dtype=e.dtype, device=e.device).index_add(0, g.pair_qm, e)
        x = self.representation.qm_features(g.Z, r_ij, g.idx_i, g.idx_j, g.idx_m, V, E)
        pairs = {properties.idx_i: g.idx_i, properties.idx_j: g.idx_j, properties.Rij: r_ij}
        mu = pair_dipoles(self.head.dipole_net, self.head.cutoff_fn, x, pairs)
        return self.head.atom_energies(x, g.Z, g.idx_m, V, E, mu).sum()


def _signature(model: NeuralNetworkPotential) -> tuple:
    """What must agree for members to be stacked: architecture, QM charge, embedding, parameter shapes."""
    s = model.mlmm_settings
    shapes = tuple((name, tuple(p.shape)) for name, p in model.named_parameters())
    return (tuple(s[k] for k in ARCHITECTURE_KEYS), s["qm_charge_e"], tuple(sorted(s["embedding"].items())), shapes)


class BatchedCommittee:
    """All members of an ensemble in one vmapped forward and one backward (module docstring).

    It holds a copy of the members' parameters and buffers taken at construction (for inference:
    build it again after changing a member).
    """

    def __init__(self, models: Sequence[NeuralNetworkPotential]) -> None:
        if not self.can_stack(models):
            raise ValueError("BatchedCommittee: the members differ in architecture, QM charge or embedding")
        members = [_MemberEnergy(m) for m in models]
        params, buffers = stack_module_state(members)
        self.params = {k: v.detach() for k, v in params.items()}  # inference only: no parameter gradients
        self.buffers = buffers
        self.base = copy.deepcopy(members[0]).to("meta")
        self.n_members = len(members)
        #: A lone member runs as itself: vmap over one member only adds overhead.
        self.single = copy.deepcopy(members[0]).requires_grad_(False) if len(members) == 1 else None
        first = next(models[0].parameters())
        self.dtype, self.device = first.dtype, first.device

    @staticmethod
    def can_stack(models: Sequence[NeuralNetworkPotential]) -> bool:
        """True if the members share architecture, QM charge, embedding and parameter shapes."""
        return len({_signature(m) for m in models}) == 1

    def geometry(self, Z_qm: np.ndarray, mm_charges_e: np.ndarray, mm_groups: np.ndarray) -> CommitteeGeometry:
        """The index tensors for QM atoms ``Z_qm`` and MM sites with charges (e) and embedding
        groups (molecule ids, any integers)."""
        n_qm, n_mm = len(Z_qm), len(mm_charges_e)
        dev = self.device
        ii, jj = np.nonzero(~np.eye(n_qm, dtype=bool))
        groups = torch.as_tensor(np.asarray(mm_groups, np.int64), device=dev)
        gid, n_groups = group_index(groups, torch.zeros(n_mm, dtype=torch.long, device=dev))
        pair_qm = torch.arange(n_qm, device=dev).repeat_interleave(n_mm)
        pair_mm = torch.arange(n_mm, device=dev).repeat(n_qm)
        return CommitteeGeometry(
            Z=torch.as_tensor(np.asarray(Z_qm, np.int64), device=dev),
            idx_i=torch.as_tensor(ii, device=dev), idx_j=torch.as_tensor(jj, device=dev),
            idx_m=torch.zeros(n_qm, dtype=torch.long, device=dev),
            mm_charges_e=torch.as_tensor(np.asarray(mm_charges_e, float), dtype=self.dtype, device=dev),
            pair_qm=pair_qm, pair_mm=pair_mm, pair_group=gid[pair_mm], n_groups=n_groups,
        )

    def __call__(self, geometry: CommitteeGeometry, R_qm_ang: np.ndarray, R_mm_ang: np.ndarray
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Energies (M,) in eV and forces (M, n_qm, 3) on the QM atoms and (M, n_mm, 3) on the MM
        sites in eV/Å of every member at QM positions ``R_qm_ang`` and MM positions ``R_mm_ang``."""
        M = self.n_members
        R_qm = torch.as_tensor(R_qm_ang, dtype=self.dtype, device=self.device).expand(M, -1, -1).clone().requires_grad_()
        R_mm = torch.as_tensor(R_mm_ang, dtype=self.dtype, device=self.device).expand(M, -1, -1).clone().requires_grad_()

        def member(params: dict, buffers: dict, r_qm: torch.Tensor, r_mm: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (params, buffers), (r_qm, r_mm, geometry))

        if self.single is not None:
            energies = self.single(R_qm[0], R_mm[0], geometry)[None]
        else:
            energies = vmap(member)(self.params, self.buffers, R_qm, R_mm)
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
                                                 s.molecule_index[self._sites])
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
