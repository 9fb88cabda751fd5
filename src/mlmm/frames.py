"""The Frame contract shared by every stage (see DESIGN.md §2).

A Frame is an :class:`ase.Atoms` holding the QM atoms first, then the MM sites inside the
embedding cutoff (whole molecules only). Positions are in Å and form a non-periodic cluster:
MM sites are placed at their minimum image relative to the QM region; the full system's cell,
if any, is kept in ``info["box_cell"]``.

Arrays: ``qm_mask`` (bool per atom), ``initial_charges`` (MM partial charges in e; 0 for QM
atoms), optionally ``mm_molecule`` (int molecule index per atom; -1 for QM atoms) and
``momenta``. Info: ``qm_charge``, ``multiplicity``, ``sampler``, ``iteration``, ``source``,
``seed``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.io import read, write

REQUIRED_INFO: tuple[str, ...] = (
    "qm_charge",
    "multiplicity",
    "sampler",
    "iteration",
    "source",
    "seed",
)


class FrameError(ValueError):
    """A configuration violates the Frame contract."""


def make_frame(
    qm_symbols: Sequence[str],
    qm_positions_ang: np.ndarray,
    mm_symbols: Sequence[str],
    mm_positions_ang: np.ndarray,
    mm_charges_e: np.ndarray,
    *,
    qm_charge: int,
    multiplicity: int,
    sampler: str,
    iteration: int,
    source: str,
    seed: int,
    mm_molecule: np.ndarray | None = None,
    box_cell_ang: np.ndarray | None = None,
    extra_info: dict[str, Any] | None = None,
) -> Atoms:
    """Build a Frame from QM atoms and the embedded MM sites (positions in Å, charges in e)."""
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
    if mm_molecule is not None:
        atoms.set_array("mm_molecule", np.r_[-np.ones(n_qm, int), np.asarray(mm_molecule, int)])
    atoms.info.update(
        qm_charge=int(qm_charge),
        multiplicity=int(multiplicity),
        sampler=str(sampler),
        iteration=int(iteration),
        source=str(source),
        seed=int(seed),
    )
    if box_cell_ang is not None:
        atoms.info["box_cell"] = np.asarray(box_cell_ang, float).reshape(-1).tolist()
    if extra_info:
        atoms.info.update(extra_info)
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
        validate_frame(atoms, where=f"{path}: frame {i}")
    return frames
