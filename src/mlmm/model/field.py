"""Model inputs for electrostatic embedding: QM-only neighbour pairs and the MM field at QM atoms.

The MM sites of a Frame are not SchNet atoms: :class:`QMPairList` lists pairs among QM atoms only,
and :class:`MMField` turns the embedding-weighted MM charges q_a·w_g(a) (:mod:`mlmm.embedding`, the
same charges the PySCF labels were computed in) into the electrostatic potential V_i (eV/e, i.e.
volt) and field E_i (V/Å) at every QM atom. The positions stay in the autograd graph through the
Coulomb terms and the weights, so ``forces = -dE/dR`` yields forces on the MM sites too, including
the weights' chain-rule term on QM atoms and MM sites.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch
from ase import Atoms
from schnetpack import properties
from schnetpack.transform import Transform
from torch import nn

from mlmm.embedding import check_embedding, group_index, group_weights
from mlmm.units import COULOMB_EV_ANGSTROM

#: Per-atom input keys of the labels DB (see docs/CONTRACTS.md).
QM_MASK = "qm_mask"
MM_CHARGES = "mm_charges"
MM_MOLECULE = "mm_molecule"
#: Keys written by :class:`MMField` (per atom; zero on MM sites).
FIELD_POTENTIAL = "field_potential"  # V_i in eV/e
FIELD_VECTOR = "field_vector"  # E_i in V/Å


class QMPairList(Transform):
    """Neighbour list among the QM atoms of one frame (non-periodic), cutoff in Å.

    Writes ``_idx_i``, ``_idx_j`` (frame-local atom indices; schnetpack's collate shifts them per
    frame) and zero ``_offsets``. MM sites never appear, so SchNet does not see them as neighbours.
    """

    is_preprocessor: bool = True
    is_postprocessor: bool = False

    def __init__(self, cutoff_ang: float) -> None:
        super().__init__()
        self.cutoff_ang = float(cutoff_ang)

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        R = inputs[properties.R]
        qm = torch.nonzero(inputs[QM_MASK] > 0.5).squeeze(-1)
        with torch.no_grad():
            d = torch.cdist(R[qm], R[qm])
            close = (d < self.cutoff_ang) & ~torch.eye(len(qm), dtype=torch.bool, device=R.device)
            a, b = torch.nonzero(close, as_tuple=True)
        inputs[properties.idx_i] = qm[a]
        inputs[properties.idx_j] = qm[b]
        inputs[properties.offsets] = torch.zeros((len(a), 3), dtype=R.dtype, device=R.device)
        return inputs


def embedded_coulomb(r_vec: torch.Tensor, charges_e: torch.Tensor, pair_group: torch.Tensor, n_groups: int,
                     cutoff_ang: float, switch_width_ang: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (QM atom i, MM site j) pair: the potential k_e q_j w_g(j) / r_ij (eV/e) and field
    k_e q_j w_g(j) r_ij / r_ij³ (V/Å) of the weighted charge at i, from ``r_vec`` = R_i − R_j (Å),
    the site charges ``charges_e`` (e) and groups ``pair_group`` (0..``n_groups``-1) of the pairs.
    All pairs of a group with the QM atoms must be given (its weight is a product over them); the
    caller sums the pair terms onto its QM atoms. The one definition of the model's field input
    (:class:`MMField` and the MD committee, :mod:`mlmm.model.committee`)."""
    r = torch.linalg.vector_norm(r_vec, dim=-1)
    w = group_weights(r, pair_group, n_groups, cutoff_ang, switch_width_ang)[pair_group]  # weight per pair
    kq = COULOMB_EV_ANGSTROM * charges_e * w
    return kq / r, (kq / r**3)[..., None] * r_vec


class MMField(nn.Module):
    """Electrostatic potential V_i (eV/e) and field E_i (V/Å) of the weighted MM charges at each QM atom.

    V_i = k_e Σ_j q_j w_j / r_ij and E_i = k_e Σ_j q_j w_j (R_i - R_j)/r_ij³ over the MM sites j of
    the same frame (``_idx_m``), with w_j the embedding weight of j's group
    (:func:`mlmm.embedding.group_weights` from the same pair distances; ``cutoff_ang`` /
    ``switch_width_ang`` = the system's ``embedding``) and k_e = 14.3996 eV·Å/e². Groups leave
    smoothly (C²) at the cutoff. Results are per atom (zero on MM sites) under
    :data:`FIELD_POTENTIAL` and :data:`FIELD_VECTOR`.
    """

    def __init__(self, cutoff_ang: float, switch_width_ang: float) -> None:
        super().__init__()
        check_embedding(cutoff_ang, switch_width_ang, where="MMField")
        self.cutoff_ang = float(cutoff_ang)
        self.switch_width_ang = float(switch_width_ang)

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        R = inputs[properties.R]
        is_qm = inputs[QM_MASK] > 0.5
        idx_m = inputs[properties.idx_m]
        qm = torch.nonzero(is_qm).squeeze(-1)
        mm = torch.nonzero(~is_qm).squeeze(-1)
        gid = torch.zeros(R.shape[0], dtype=torch.long, device=R.device)
        gid_mm, n_groups = group_index(inputs[MM_MOLECULE][mm].round(), idx_m[mm])
        gid[mm] = gid_mm
        with torch.no_grad():  # pair search only; the kept pairs are differentiated below
            same = idx_m[qm][:, None] == idx_m[mm][None, :]
            a, b = torch.nonzero(same, as_tuple=True)
            i, j = qm[a], mm[b]
        v_pair, e_pair = embedded_coulomb(R[i] - R[j], inputs[MM_CHARGES].to(R.dtype)[j], gid[j], n_groups,
                                          self.cutoff_ang, self.switch_width_ang)
        n = R.shape[0]
        potential = torch.zeros(n, dtype=R.dtype, device=R.device).index_add(0, i, v_pair)
        field = torch.zeros((n, 3), dtype=R.dtype, device=R.device).index_add(0, i, e_pair)
        inputs[FIELD_POTENTIAL] = potential
        inputs[FIELD_VECTOR] = field
        return inputs


def frame_to_inputs(
    frame: Atoms, pair_list: QMPairList, dtype: torch.dtype = torch.float32
) -> Dict[str, torch.Tensor]:
    """schnetpack input dict (one-frame batch) for a Frame: positions Å, raw MM charges e, MM groups, QM pairs."""
    n = len(frame)
    inputs = {
        properties.Z: torch.as_tensor(frame.numbers, dtype=torch.long),
        properties.R: torch.as_tensor(np.asarray(frame.positions), dtype=dtype),
        properties.cell: torch.zeros((1, 3, 3), dtype=dtype),
        properties.pbc: torch.zeros(3, dtype=torch.bool),
        properties.n_atoms: torch.tensor([n]),
        properties.idx_m: torch.zeros(n, dtype=torch.long),
        properties.idx: torch.tensor([0]),
        QM_MASK: torch.as_tensor(np.asarray(frame.arrays["qm_mask"], float), dtype=dtype),
        MM_CHARGES: torch.as_tensor(frame.get_initial_charges(), dtype=dtype),
        MM_MOLECULE: torch.as_tensor(np.asarray(frame.arrays["mm_molecule"], float), dtype=dtype),
    }
    return pair_list(inputs)
