"""Pieces shared by the samplers: the xTB/MM potential, QM re-embedding, geometry filters.

A sampler that changes only the QM coordinates (normal modes, Wigner, PCA) keeps the MM
environment of a reference Frame: the new QM geometry is rigidly aligned (Kabsch, mass
weighted) onto the reference QM atoms and replaces them, so solvent shells stay where they were.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from mlmm.frames import link_atoms, n_real_qm, place_link_atoms, qm_mask, validate_frame
from mlmm.potentials import QMMMCalculator, build_potential
from mlmm.settings import EmbeddingSettings
from mlmm.system import System


def xtb_mm_potential(system: System, embedding: EmbeddingSettings) -> QMMMCalculator:
    """The samplers' xTB/MM potential (``xtb`` of :mod:`mlmm.potentials`): GFN2-xTB (vacuum) on the
    QM region, the force field's MM terms and QM–MM Lennard-Jones, and its Coulomb term with the QM
    region's GFN2 Mulliken charges fixed at the start geometry; ``embedding`` cuts its Frames."""
    return build_potential("xtb", system, embedding=embedding)


def kabsch(mobile: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation R and centres (c_mobile, c_target) minimising the weighted RMSD of
    ``(mobile - c_mobile) @ R.T + c_target`` to ``target`` (both (n, 3), Å)."""
    w = np.ones(len(mobile)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    cm, ct = w @ mobile, w @ target
    h = ((mobile - cm) * w[:, None]).T @ (target - ct)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, cm, ct


def align(mobile: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``mobile`` (n, 3) rigidly moved onto ``target`` (weighted Kabsch)."""
    rot, cm, ct = kabsch(mobile, target, weights)
    return (mobile - cm) @ rot.T + ct


def embed_qm(reference: Atoms, qm_positions_ang: np.ndarray, *, sampler: str, seed: int, source: str,
             qm_momenta: np.ndarray | None = None, **extra_info) -> Atoms:
    """A Frame with the MM sites of ``reference`` and the given QM geometry, aligned (mass
    weighted) onto the reference QM atoms. With link atoms, the geometry is that of the other QM
    atoms (:func:`mlmm.frames.n_real_qm`; rows beyond are ignored) and the link atoms are put back
    on their Q1–M1 lines. ``qm_momenta`` (amu·Å/fs·ASE units) are rotated with it."""
    n_qm = n_real_qm(reference)
    qm_positions_ang = np.asarray(qm_positions_ang, float)[:n_qm]
    masses = reference.get_masses()[:n_qm]
    rot, cm, ct = kabsch(qm_positions_ang, reference.positions[:n_qm], masses)
    frame = reference.copy()
    frame.calc = None
    pos = frame.positions
    pos[:n_qm] = (qm_positions_ang - cm) @ rot.T + ct
    frame.positions = place_link_atoms(pos, frame)
    if qm_momenta is not None:
        momenta = np.zeros((len(frame), 3))
        momenta[:n_qm] = np.asarray(qm_momenta, float)[:n_qm] @ rot.T
        frame.set_momenta(momenta)
    elif "momenta" in frame.arrays:
        del frame.arrays["momenta"]
    for key in ("sigma_force",):
        frame.info.pop(key, None)
    frame.info.update(sampler=sampler, iteration=0, seed=int(seed), source=source, **extra_info)
    validate_frame(frame, where=f"{sampler} frame")
    return frame


def min_qm_distance(frame: Atoms) -> float:
    """Shortest distance (Å) of any atom pair involving at least one QM atom, except a link atom
    and the MM atom it replaces (0.44 Å apart on a C–C bond, by construction)."""
    mask = qm_mask(frame)
    qm = frame.positions[mask]
    d = np.linalg.norm(qm[:, None] - frame.positions[None], axis=2)
    n_qm = len(qm)
    d[np.arange(n_qm), np.arange(n_qm)] = np.inf
    links, _ = link_atoms(frame)
    d[links[:, 0], links[:, 2]] = np.inf
    return float(d.min())
