"""Model inputs for electrostatic embedding: QM-only neighbour pairs and the MM field at QM atoms.

The MM sites of a Frame are not SchNet atoms: :class:`QMPairList` lists pairs among QM atoms only,
and :class:`MMField` turns the MM point charges into the electrostatic potential V_i (eV/e, i.e.
volt) and field E_i (V/Å) at every QM atom. Both keep the MM positions in the autograd graph, so
``forces = -dE/dR`` yields forces on the MM sites too.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch
from ase import Atoms
from schnetpack import properties
from schnetpack.transform import Transform
from torch import nn

from mlmm.units import COULOMB_EV_ANGSTROM

#: Per-atom input keys of the labels DB (see docs/CONTRACTS.md).
QM_MASK = "qm_mask"
MM_CHARGES = "mm_charges"
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


def smooth_switch(r: torch.Tensor, switch_on: float, switch_off: float) -> torch.Tensor:
    """Quintic switch: 1 below ``switch_on``, 0 beyond ``switch_off`` (Å); C2 at both ends.

    s(x) = 1 - x³(10 - 15x + 6x²), x = (r - on)/(off - on) clipped to [0, 1]; s' and s'' vanish at
    both ends, so energies and forces stay continuous when an MM site crosses the cutoff.
    """
    x = ((r - switch_on) / (switch_off - switch_on)).clamp(0.0, 1.0)
    return 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x**2)


class MMField(nn.Module):
    """Electrostatic potential V_i (eV/e) and field E_i (V/Å) of the MM charges at each QM atom.

    V_i = k_e Σ_j q_j s(r_ij)/r_ij and E_i = k_e Σ_j q_j s(r_ij) (R_i - R_j)/r_ij³ over the MM sites j
    of the same frame (``_idx_m``) with r_ij < ``field_cutoff_ang``; k_e = 14.3996 eV·Å/e². Both
    vanish smoothly at the cutoff. Results are per atom (zero on MM sites) under
    :data:`FIELD_POTENTIAL` and :data:`FIELD_VECTOR`.
    """

    def __init__(self, field_cutoff_ang: float, field_switch_on_ang: float) -> None:
        super().__init__()
        if not 0.0 < field_switch_on_ang < field_cutoff_ang:
            raise ValueError(
                f"need 0 < field_switch_on_ang ({field_switch_on_ang}) < field_cutoff_ang ({field_cutoff_ang})"
            )
        self.field_cutoff_ang = float(field_cutoff_ang)
        self.field_switch_on_ang = float(field_switch_on_ang)

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        R = inputs[properties.R]
        q = inputs[MM_CHARGES].to(R.dtype)
        is_qm = inputs[QM_MASK] > 0.5
        idx_m = inputs[properties.idx_m]
        qm = torch.nonzero(is_qm).squeeze(-1)
        mm = torch.nonzero(~is_qm & (q != 0.0)).squeeze(-1)
        with torch.no_grad():  # pair search only; the kept pairs are differentiated below
            same = idx_m[qm][:, None] == idx_m[mm][None, :]
            a, b = torch.nonzero(same, as_tuple=True)
            i, j = qm[a], mm[b]
            keep = torch.linalg.vector_norm(R[i] - R[j], dim=-1) < self.field_cutoff_ang
            i, j = i[keep], j[keep]
        r_vec = R[i] - R[j]  # from MM site j to QM atom i, Å
        r = torch.linalg.vector_norm(r_vec, dim=-1)
        kq_s = COULOMB_EV_ANGSTROM * q[j] * smooth_switch(r, self.field_switch_on_ang, self.field_cutoff_ang)
        n = R.shape[0]
        potential = torch.zeros(n, dtype=R.dtype, device=R.device).index_add(0, i, kq_s / r)
        field = torch.zeros((n, 3), dtype=R.dtype, device=R.device).index_add(
            0, i, (kq_s / r**3)[:, None] * r_vec
        )
        inputs[FIELD_POTENTIAL] = potential
        inputs[FIELD_VECTOR] = field
        return inputs


def frame_to_inputs(
    frame: Atoms, pair_list: QMPairList, dtype: torch.dtype = torch.float32
) -> Dict[str, torch.Tensor]:
    """schnetpack input dict (one-frame batch) for a Frame: positions Å, MM charges e, QM pairs."""
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
    }
    return pair_list(inputs)
