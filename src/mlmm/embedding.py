"""The electrostatic embedding, defined once: which MM charges the QM region sees, with which weights.

Every consumer — the cut into Frames (:meth:`mlmm.system.System.cut_frame`), the PySCF labels
(:mod:`mlmm.engines.pyscf_qmmm`, :mod:`mlmm.labeling.excited`), the xTB point-charge term
(:mod:`mlmm.engines.xtb`), the model's field input (:class:`mlmm.model.field.MMField`) and so MD —
puts the charge ``q_a · w_g(a)`` on MM site ``a`` and takes the weights from this module only.

**Groups** are the MM molecules/residues (``System.molecule_index``, the Frame's ``mm_molecule``),
each of integer total charge (checked by :func:`mlmm.frames.validate_frame`). A group is switched
as a whole, never per (QM atom, MM site) pair: a per-pair switch gives each QM atom a different
fraction of a water's O and H charges, i.e. a spurious net charge inside the switching shell
(−1.6…+1.9 e on the demo, 1.8 V RMS error of the potential at the QM atoms relative to their mean,
against 0.025 V with these per-group weights; tests/test_embedding.py).

**Weight** of group g, with cutoff r_c and switch width w (``system.embedding``, Å)::

    w_g = 1 − Π_{i ∈ QM, a ∈ g} u(r_ia),   u(r) = x³ (10 − 15x + 6x²),   x = clip((r − r_c + w) / w, 0, 1)

``1 − u`` is the quintic switch (1 below r_c − w, 0 beyond r_c, first and second derivatives zero at
both ends). So w_g = 1 as soon as one atom of the group is within r_c − w of a QM atom and w_g = 0
exactly when none is within r_c; in between, with a single pair in the shell, w_g = 1 − u(r_min) is
the switch of the closest distance, and with several pairs in the shell every pair contributes.
w_g is C² in all positions (a product of C² factors) and never depends on *which* pair is
closest, so there is no force jump when the closest pair changes (as with a plain minimum
distance), and there is no extra smoothing length. Equivalently w_g = 1 − u(d_g) defines a smooth
group–QM distance d_g ≤ min r_ia.

**Forces.** The energy depends on the positions also through the weights:
``F_k −= Σ_a (∂E/∂q_a) q_a ∂w_g(a)/∂R_k`` with ``∂E/∂q_a`` the electrostatic potential of the QM
region at site a. The model gets this term from autograd through :func:`group_weights`; engines
that return ``∂E/∂q_a`` get it from :func:`weight_forces`. Both act on QM atoms and MM sites.

Implemented once, in torch (:func:`group_weights`, differentiable, batched over frames): from pair
distances (the model's field input, which has them) or from positions (:func:`site_weights`); the
NumPy functions below are thin entries to the same code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
from ase import Atoms

from mlmm.settings import EmbeddingSettings

if TYPE_CHECKING:  # torch is imported where weights are computed: Frame users without weights need none
    import torch

#: Frame ``info`` keys of the embedding a Frame was cut with (Å).
INFO_CUTOFF = "embedding_cutoff"
INFO_SWITCH_WIDTH = "embedding_switch_width"
INFO_KEYS: tuple[str, str] = (INFO_CUTOFF, INFO_SWITCH_WIDTH)


def check_embedding(cutoff_ang: float, switch_width_ang: float, where: str = "system.embedding") -> None:
    """Raise ValueError naming ``where`` unless 0 < switch_width ≤ cutoff (Å)."""
    if not 0.0 < float(switch_width_ang) <= float(cutoff_ang):
        raise ValueError(f"{where}: need 0 < switch_width ({switch_width_ang}) <= cutoff ({cutoff_ang}) in Å")


def embedding_info(embedding: EmbeddingSettings) -> dict[str, float]:
    """Frame ``info`` entries recording ``embedding`` (Å)."""
    check_embedding(embedding.cutoff, embedding.switch_width)
    return {INFO_CUTOFF: float(embedding.cutoff), INFO_SWITCH_WIDTH: float(embedding.switch_width)}


def frame_embedding(frame: Atoms | Mapping[str, Any]) -> EmbeddingSettings:
    """The embedding a Frame was cut with (from its ``info``; a mapping such as a labels-DB row's
    key_value_pairs works too)."""
    info = frame.info if isinstance(frame, Atoms) else frame
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise KeyError(f"frame info lacks the embedding keys {missing} (frames are cut by System.cut_frame)")
    return EmbeddingSettings(cutoff=float(info[INFO_CUTOFF]), switch_width=float(info[INFO_SWITCH_WIDTH]))


def switch_complement(r_ang: torch.Tensor, cutoff_ang: float, switch_width_ang: float) -> torch.Tensor:
    """u(r) = 1 − s(r): 0 below ``cutoff − switch_width``, 1 beyond ``cutoff`` (Å), C² (see module docstring)."""
    x = ((r_ang - (cutoff_ang - switch_width_ang)) / switch_width_ang).clamp(0.0, 1.0)
    return x**3 * (10.0 - 15.0 * x + 6.0 * x**2)


def group_index(group: torch.Tensor, frame_index: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(id in 0..G-1 of each MM site's (frame, group), G) for the MM sites of a batch."""
    import torch

    g = group.long()
    key = frame_index.long() * (int(g.max()) + 1 if len(g) else 1) + g  # one id per (frame, group)
    _, gid = torch.unique(key, return_inverse=True)
    return gid, int(gid.max()) + 1 if len(gid) else 0


def group_weights(r_ang: torch.Tensor, pair_group: torch.Tensor, n_groups: int, cutoff_ang: float,
                  switch_width_ang: float) -> torch.Tensor:
    """w_g = 1 − Π u(r) (module docstring) of ``n_groups`` groups from (QM atom, MM atom) pair
    distances ``r_ang`` (Å) and each pair's group ``pair_group``; pairs at r ≥ cutoff may be given
    (u = 1). Differentiable in ``r_ang`` (twice, for force training); the product is taken as a sum
    of logarithms, with a group that has a pair inside cutoff − width set to exactly 1.
    """
    import torch

    u = switch_complement(r_ang, cutoff_ang, switch_width_ang)
    inside = u == 0.0
    log_u = torch.log(torch.where(inside, torch.ones_like(u), u))
    log_prod = torch.zeros(n_groups, dtype=u.dtype, device=u.device).index_add(0, pair_group, log_u)
    n_inside = torch.zeros(n_groups, dtype=u.dtype, device=u.device).index_add(0, pair_group, inside.to(u.dtype))
    return torch.where(n_inside > 0.0, torch.ones_like(log_prod), -torch.expm1(log_prod))


def site_weights(
    positions_ang: torch.Tensor,
    is_qm: torch.Tensor,
    group: torch.Tensor,
    frame_index: torch.Tensor,
    cutoff_ang: float,
    switch_width_ang: float,
) -> torch.Tensor:
    """Per-atom embedding weight w_g(a) of the MM sites (0 on QM atoms).

    ``positions_ang`` (N, 3), ``is_qm`` (N,) bool, ``group`` (N,) int (the MM molecule index, any
    value on QM atoms) and ``frame_index`` (N,) int (schnetpack's ``_idx_m``: atoms of different
    frames never interact) for a batch of frames. Differentiable in the positions (twice).
    """
    import torch

    weights = torch.zeros(positions_ang.shape[0], dtype=positions_ang.dtype, device=positions_ang.device)
    qm = torch.nonzero(is_qm).squeeze(-1)
    mm = torch.nonzero(~is_qm).squeeze(-1)
    if len(mm) == 0:
        return weights
    gid, n_groups = group_index(group[mm], frame_index[mm])
    with torch.no_grad():  # pair search only (pairs beyond the cutoff have u = 1); kept pairs differentiated below
        same = frame_index[qm][:, None] == frame_index[mm][None, :]
        a, b = torch.nonzero(same & (torch.cdist(positions_ang[qm], positions_ang[mm]) < cutoff_ang), as_tuple=True)
    r = torch.linalg.vector_norm(positions_ang[qm[a]] - positions_ang[mm[b]], dim=-1)
    w_group = group_weights(r, gid[b], n_groups, cutoff_ang, switch_width_ang)
    return weights.index_copy(0, mm, w_group[gid])


def _groups(frame: Atoms) -> np.ndarray:
    """The Frame's ``mm_molecule`` array (the embedding's groups)."""
    if "mm_molecule" not in frame.arrays:
        raise KeyError("frame has no 'mm_molecule' array (the embedding's groups; frames are cut by System.cut_frame)")
    return np.asarray(frame.arrays["mm_molecule"], np.int64)


def weights_of(positions_ang: np.ndarray, is_qm: np.ndarray, group: np.ndarray, embedding: EmbeddingSettings) -> np.ndarray:
    """NumPy entry to :func:`site_weights` for one configuration (weights per atom, 0 on QM atoms)."""
    import torch

    with torch.no_grad():
        w = site_weights(
            torch.as_tensor(np.asarray(positions_ang, float), dtype=torch.float64),
            torch.as_tensor(np.asarray(is_qm, bool)),
            torch.as_tensor(np.asarray(group, np.int64)),
            torch.zeros(len(is_qm), dtype=torch.long),
            float(embedding.cutoff),
            float(embedding.switch_width),
        )
    return w.numpy()


def frame_weights(frame: Atoms) -> np.ndarray:
    """Per-atom weights w_g(a) of a Frame (0 on QM atoms), with the embedding it was cut with."""
    return weights_of(frame.positions, frame.arrays["qm_mask"], _groups(frame), frame_embedding(frame))


def molecule_weights(frame: Atoms, n_molecules: int) -> np.ndarray:
    """Weight w_g of each MM molecule g = 0..``n_molecules``-1 of the full system (the Frame's
    ``mm_molecule`` numbering) in a Frame: :func:`frame_weights` for the molecules it holds, 0 for
    the others (no atom within the cutoff, so not cut into the Frame)."""
    mm = ~np.asarray(frame.arrays["qm_mask"], bool)
    weights = np.zeros(int(n_molecules))
    weights[_groups(frame)[mm]] = frame_weights(frame)[mm]
    return weights


def boundary_crossings(weights: np.ndarray) -> dict[str, int]:
    """How often molecules crossed the embedding's boundaries between consecutive rows of
    ``weights`` ((n_frames, n_molecules) w_g, e.g. :func:`molecule_weights` of the saved Frames of a
    trajectory): ``cutoff`` counts changes between w = 0 and w > 0 (entering or leaving the
    embedding at r_c), ``inner`` between w < 1 and w = 1 (at r_c − switch_width; w is exactly 1
    and 0 beyond those radii), ``molecules`` the molecules that crossed either."""
    w = np.asarray(weights, float)
    if w.ndim != 2:
        raise ValueError(f"boundary_crossings: weights must be (n_frames, n_molecules), got shape {w.shape}")
    outer = np.diff(w > 0.0, axis=0)
    inner = np.diff(w == 1.0, axis=0)
    return {"cutoff": int(outer.sum()), "inner": int(inner.sum()),
            "molecules": int((outer | inner).any(axis=0).sum())}


def weighted_charges(frame: Atoms) -> np.ndarray:
    """The charges the QM region sees: q_a · w_g(a) (e) per atom of a Frame (0 on QM atoms)."""
    return np.asarray(frame.get_initial_charges(), float) * frame_weights(frame)


def weight_forces(frame: Atoms, potential_ev_per_e: np.ndarray) -> np.ndarray:
    """The weights' force term −∇_R Σ_a φ_a q_a w_g(a) (eV/Å, (n_atoms, 3)) of a Frame.

    ``potential_ev_per_e``: φ_a = ∂E/∂q_a (eV/e) per atom, the potential of the QM region (nuclei
    and electrons) at each MM site (ignored on QM atoms). Add the result to the forces at fixed
    charges to get −dE/dR of the energy in the weighted charges.
    """
    import torch

    e = frame_embedding(frame)
    is_qm = np.asarray(frame.arrays["qm_mask"], bool)
    positions = torch.tensor(np.asarray(frame.positions, float), dtype=torch.float64, requires_grad=True)
    w = site_weights(positions, torch.as_tensor(is_qm), torch.as_tensor(_groups(frame)),
                     torch.zeros(len(frame), dtype=torch.long), e.cutoff, e.switch_width)
    if not w.requires_grad:  # no MM site within the cutoff: the weights do not move
        return np.zeros((len(frame), 3))
    phi_q = np.where(is_qm, 0.0, np.asarray(potential_ev_per_e, float)) * np.asarray(frame.get_initial_charges(), float)
    (grad,) = torch.autograd.grad((torch.as_tensor(phi_q) * w).sum(), positions)
    return -grad.numpy()
