"""The Frame contract shared by every stage (see DESIGN.md §2).

A Frame is an :class:`ase.Atoms` holding the QM atoms first, then the MM sites of every MM group
(molecule/residue) the embedding gives a weight > 0 (:mod:`mlmm.embedding`; whole groups only).
Positions are in Å and form a non-periodic cluster: MM sites are placed at their minimum image
relative to the QM region; the full system's cell, if any, is kept in ``info["box_cell"]``.

Arrays: ``qm_mask`` (bool per atom), ``initial_charges`` (the raw MM partial charges in e; 0 for
QM atoms — the weights that scale them come only from :mod:`mlmm.embedding`), ``mm_molecule``
(int group index per atom, -1 for QM atoms; every group has integer total charge) and optionally
``momenta``. Info: ``qm_charge``, ``multiplicity``, ``sampler``, ``iteration``, ``source``,
``seed`` and the embedding the Frame was cut with, ``embedding_cutoff`` and
``embedding_switch_width`` (Å).

Link atoms (covalent QM/MM boundaries, :mod:`mlmm.boundary`) are QM atoms (hydrogens) right after
the Frame's other QM atoms; ``info["link_atoms"]`` lists them, ``"L:Q1:M1:g;…"`` with L the link
atom, Q1 the QM atom and M1 the MM site of the cut bond (Frame indices) and g the ratio of
R_L = R_Q1 + g (R_M1 − R_Q1), which every Frame satisfies (:func:`link_atoms` reads it). A Frame
without the key has no link atoms. A string, so that extxyz and the labels DB keep it as it is.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.io import read, write

from mlmm.boundary import link_positions
from mlmm.embedding import INFO_KEYS, embedding_info
from mlmm.settings import EmbeddingSettings

REQUIRED_INFO: tuple[str, ...] = (
    "qm_charge",
    "multiplicity",
    "sampler",
    "iteration",
    "source",
    "seed",
    *INFO_KEYS,
)
#: Largest deviation (e) of an MM group's total charge from an integer (as load_system allows).
GROUP_CHARGE_TOLERANCE_E = 1e-3
#: Frame ``info`` key of the link atoms (module docstring).
LINK_INFO = "link_atoms"
#: Largest distance (Å) of a link atom from its place on the Q1–M1 line (positions are written with 8 decimals).
LINK_POSITION_TOLERANCE_ANG = 1e-5


class FrameError(ValueError):
    """A configuration violates the Frame contract."""


def encode_link_atoms(indices: np.ndarray, ratios: np.ndarray) -> str:
    """The ``info["link_atoms"]`` string of (L, 3) Frame indices (link atom, Q1, M1) and (L,) ratios g."""
    return ";".join(f"{int(a)}:{int(q)}:{int(m)}:{float(g)!r}" for (a, q, m), g in zip(np.reshape(indices, (-1, 3)), ratios))


def link_atoms(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """The Frame's link atoms: (L, 3) int Frame indices (link atom, Q1, M1) and (L,) ratios g (empty
    arrays without link atoms)."""
    text = str(atoms.info.get(LINK_INFO, "")).strip()
    if not text:
        return np.zeros((0, 3), int), np.zeros(0)
    try:
        rows = [part.split(":") for part in text.split(";")]
        return np.array([[int(v) for v in r[:3]] for r in rows], int).reshape(-1, 3), np.array([float(r[3]) for r in rows])
    except (ValueError, IndexError) as err:
        raise FrameError(f"info {LINK_INFO}={text!r} is not 'L:Q1:M1:g;…' ({err})") from err


def place_link_atoms(positions_ang: np.ndarray, atoms: Atoms) -> np.ndarray:
    """``positions_ang`` (n, 3) of Frame ``atoms`` with its link atoms put on their Q1–M1 lines
    (for samplers that move QM atoms or MM sites of a Frame)."""
    rows, ratios = link_atoms(atoms)
    pos = np.array(positions_ang, float)
    if len(rows):
        link, q1, m1 = rows.T
        pos[link] = link_positions(pos[q1], pos[m1], ratios)
    return pos


def n_real_qm(atoms: Atoms) -> int:
    """Number of a Frame's QM atoms that are no link atoms (they come first)."""
    return int(np.asarray(atoms.arrays["qm_mask"], bool).sum()) - len(link_atoms(atoms)[0])


def make_frame(
    qm_symbols: Sequence[str],
    qm_positions_ang: np.ndarray,
    mm_symbols: Sequence[str],
    mm_positions_ang: np.ndarray,
    mm_charges_e: np.ndarray,
    *,
    mm_molecule: Sequence[int] | np.ndarray,
    embedding: EmbeddingSettings,
    qm_charge: int,
    multiplicity: int,
    sampler: str,
    iteration: int,
    source: str,
    seed: int,
    box_cell_ang: np.ndarray | None = None,
    extra_info: dict[str, Any] | None = None,
    links: tuple[np.ndarray, np.ndarray] | None = None,
) -> Atoms:
    """Build a Frame from QM atoms and the embedded MM sites (positions in Å, charges in e), their
    group (MM molecule) indices and the embedding they were selected with. ``links``: the link
    atoms among the QM atoms (the last ones), as (L, 3) Frame indices (link atom, Q1, M1) and (L,)
    ratios g (:func:`link_atoms`)."""
    n_qm, n_mm = len(qm_symbols), len(mm_symbols)
    atoms = Atoms(
        symbols=list(qm_symbols) + list(mm_symbols),
        positions=np.vstack(
            [np.reshape(qm_positions_ang, (n_qm, 3)), np.reshape(mm_positions_ang, (n_mm, 3))]
        ),
        pbc=False,
    )
    atoms.set_array("qm_mask", np.r_[np.ones(n_qm, bool), np.zeros(n_mm, bool)])
    atoms.set_initial_charges(np.r_[np.zeros(n_qm), np.asarray(mm_charges_e, float)])
    atoms.set_array("mm_molecule", np.r_[-np.ones(n_qm, int), np.asarray(mm_molecule, int).reshape(n_mm)])
    atoms.info.update(
        qm_charge=int(qm_charge),
        multiplicity=int(multiplicity),
        sampler=str(sampler),
        iteration=int(iteration),
        source=str(source),
        seed=int(seed),
        **embedding_info(embedding),
    )
    if box_cell_ang is not None:
        atoms.info["box_cell"] = np.asarray(box_cell_ang, float).reshape(-1).tolist()
    if extra_info:
        atoms.info.update(extra_info)
    if links is not None and len(links[0]):
        atoms.info[LINK_INFO] = encode_link_atoms(*links)
    validate_frame(atoms)
    return atoms


def validate_frame(atoms: Atoms, where: str = "frame") -> None:
    """Raise :class:`FrameError` naming ``where`` if ``atoms`` breaks the Frame contract."""
    if "qm_mask" not in atoms.arrays:
        raise FrameError(f"{where}: missing per-atom array 'qm_mask'")
    mask = np.asarray(atoms.arrays["qm_mask"], bool)
    n_qm = int(mask.sum())
    if n_qm == 0:
        raise FrameError(f"{where}: 'qm_mask' selects no QM atom")
    if not mask[:n_qm].all():
        raise FrameError(f"{where}: QM atoms must come first (qm_mask must be True..., False...)")
    charges = atoms.get_initial_charges()
    if np.any(charges[mask] != 0.0):
        raise FrameError(f"{where}: 'initial_charges' must be 0 on QM atoms")
    missing = [k for k in REQUIRED_INFO if k not in atoms.info]
    if missing:
        raise FrameError(f"{where}: missing info keys {missing}")
    if "mm_molecule" not in atoms.arrays:
        raise FrameError(f"{where}: missing per-atom array 'mm_molecule' (the embedding's MM groups)")
    groups = np.asarray(atoms.arrays["mm_molecule"])
    if np.any(groups[mask] != -1) or np.any(groups[~mask] < 0):
        raise FrameError(f"{where}: 'mm_molecule' must be -1 on QM atoms and >= 0 on MM sites")
    if (~mask).any():
        ids, inverse = np.unique(groups[~mask], return_inverse=True)
        totals = np.bincount(inverse, weights=charges[~mask])
        bad = np.abs(totals - np.round(totals)) > GROUP_CHARGE_TOLERANCE_E
        if bad.any():
            raise FrameError(f"{where}: MM group(s) {ids[bad].tolist()} have non-integer total charge "
                             f"{totals[bad].round(4).tolist()} e (groups must be whole molecules/residues)")
    _validate_links(atoms, mask, where)


def _validate_links(atoms: Atoms, mask: np.ndarray, where: str) -> None:
    """Link atoms: hydrogens, the last QM atoms, each on its Q1–M1 line (Q1 QM, M1 an MM site)."""
    try:
        rows, ratios = link_atoms(atoms)
    except FrameError as err:
        raise FrameError(f"{where}: {err}") from err
    if not len(rows):
        return
    n, n_qm = len(atoms), int(mask.sum())
    link, q1, m1 = rows.T
    if rows.min() < 0 or rows.max() >= n:
        raise FrameError(f"{where}: {LINK_INFO} indices {rows.tolist()} outside the Frame's {n} atoms")
    if sorted(link.tolist()) != list(range(n_qm - len(link), n_qm)):
        raise FrameError(f"{where}: link atoms {link.tolist()} must be the last {len(link)} QM atoms (of {n_qm})")
    symbols = np.asarray(atoms.get_chemical_symbols())
    if np.any(symbols[link] != "H") or not mask[q1].all() or np.isin(q1, link).any() or mask[m1].any():
        raise FrameError(f"{where}: {LINK_INFO} {rows.tolist()}: link atoms must be H, Q1 a QM atom that is no link "
                         "atom, M1 an MM site")
    pos = atoms.positions
    off = np.linalg.norm(pos[link] - link_positions(pos[q1], pos[m1], ratios), axis=1)
    if off.max() > LINK_POSITION_TOLERANCE_ANG:
        raise FrameError(f"{where}: link atom {int(link[np.argmax(off)])} is {off.max():.2e} Å off its place "
                         "R_Q1 + g (R_M1 − R_Q1) (positions moved without the link atoms?)")


def qm_mask(atoms: Atoms) -> np.ndarray:
    """Boolean mask of the QM atoms of a Frame."""
    return np.asarray(atoms.arrays["qm_mask"], bool)


def mm_charges(atoms: Atoms) -> np.ndarray:
    """MM partial charges in e (0 on QM atoms)."""
    return np.asarray(atoms.get_initial_charges(), float)


def atomic_write(path: str | os.PathLike, writer) -> None:
    """Call ``writer(tmp_path)`` then rename onto ``path`` so a killed job leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        os.unlink(tmp)
        writer(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results should be readable like any output
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_frames(path: str | os.PathLike, frames: Iterable[Atoms]) -> int:
    """Validate and write Frames as extended XYZ, atomically; returns the number written."""
    frames = list(frames)
    for i, atoms in enumerate(frames):
        validate_frame(atoms, where=f"{path}: frame {i}")
    for atoms in frames:  # extxyz keeps calculator results otherwise; a Frame carries labels only in the DB
        atoms.calc = None
    atomic_write(path, lambda tmp: write(tmp, frames, format="extxyz"))
    return len(frames)


def read_frames(path: str | os.PathLike) -> list[Atoms]:
    """Read and validate Frames from an extended XYZ file (empty file -> empty list)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: frames file not found")
    if path.stat().st_size == 0:
        return []
    frames = read(path, index=":", format="extxyz")
    for i, atoms in enumerate(frames):
        if "qm_mask" in atoms.arrays:
            atoms.arrays["qm_mask"] = np.asarray(atoms.arrays["qm_mask"], bool)
        if "mm_molecule" in atoms.arrays:
            atoms.arrays["mm_molecule"] = np.asarray(atoms.arrays["mm_molecule"], int)
        validate_frame(atoms, where=f"{path}: frame {i}")
    return frames
