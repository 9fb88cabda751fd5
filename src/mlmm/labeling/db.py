"""Label databases in schnetpack's ``ASEAtomsData`` format (docs/CONTRACTS.md, "Labels DB").

Each row is one Frame (QM atoms + MM sites). ``row.data`` holds the schnetpack properties
``energy`` (eV, shape (1,)), ``forces`` (eV/Å, (n_atoms, 3)), ``qm_mask`` ((n_atoms,), 0/1),
``mm_charges`` ((n_atoms,), e: the raw MM charges) and ``mm_molecule`` ((n_atoms,), the MM group
index, -1 on QM atoms: with the positions it gives the embedding weights, :mod:`mlmm.embedding`);
the row's key_value_pairs hold ``level``, ``status``, ``pyscf_version``, ``frame_id`` and the Frame
info (``sampler``, ``iteration``, ``source``, ``seed``, ``qm_charge``, ``multiplicity``,
``embedding_cutoff``, ``embedding_switch_width``, and ``link_atoms`` for Frames with link atoms). The database metadata carries schnetpack's
units and, under ``mlmm_level``, the full level-of-theory settings the labels were computed with.

Unit strings: schnetpack parses a unit string through ``ase.units`` and passes numbers through
unchanged (``schnetpack.units._parse_unit``); ASE has no symbol for the elementary charge or
for "dimensionless", so ``qm_mask``, ``mm_charges`` and ``mm_molecule`` carry the number ``1.0`` (ASE's internal
unit, which is e for charge), which ``schnetpack.units.convert_units`` accepts.

Writes are atomic (temporary file + rename), so a killed job never leaves a half database.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from schnetpack.data import ASEAtomsData

from mlmm.embedding import INFO_KEYS, frame_embedding
from mlmm.frames import REQUIRED_INFO, atomic_write, validate_frame
from mlmm.settings import EmbeddingSettings

#: schnetpack property -> unit (energy eV, forces eV/Å, qm_mask and mm_molecule dimensionless, mm_charges e).
PROPERTY_UNITS: dict[str, str | float] = {
    "energy": "eV",
    "forces": "eV/Ang",
    "qm_mask": 1.0,
    "mm_charges": 1.0,
    "mm_molecule": 1.0,
}
DISTANCE_UNIT = "Ang"
#: Row key_value_pairs every labelled row carries.
ROW_KEYS: tuple[str, ...] = ("level", "status", "pyscf_version", "frame_id", *REQUIRED_INFO)
LEVEL_METADATA_KEY = "mlmm_level"


class LabelDBError(ValueError):
    """A label database or a row to be written breaks the labels contract."""


def frame_id(frame: Atoms) -> str:
    """Stable id of a Frame: ``info['frame_id']`` if set, else a hash of its content.

    The hash covers atomic numbers, positions (rounded to 1e-6 Å), MM charges (e), MM groups,
    QM charge, multiplicity and the embedding, so the same configuration read twice gets the same id.
    """
    if "frame_id" in frame.info:
        return str(frame.info["frame_id"])
    digest = hashlib.sha1()
    digest.update(np.asarray(frame.numbers, np.int64).tobytes())
    digest.update(np.round(frame.positions, 6).astype(np.float64).tobytes())
    digest.update(np.round(frame.get_initial_charges(), 6).astype(np.float64).tobytes())
    if "mm_molecule" in frame.arrays:
        digest.update(np.asarray(frame.arrays["mm_molecule"], np.int64).tobytes())
    digest.update("/".join(str(frame.info.get(k)) for k in ("qm_charge", "multiplicity", *INFO_KEYS)).encode())
    sampler = str(frame.info.get("sampler", "frame"))
    return f"{sampler}-{digest.hexdigest()[:16]}"


def create_label_db(path: str | os.PathLike, level: Mapping[str, Any] | None = None) -> ASEAtomsData:
    """Create an empty label database at ``path`` (must end in .db and not exist).

    ``level`` (the level-of-theory settings as a dict) is stored in the metadata for provenance.
    """
    path = str(path)
    if not path.endswith(".db"):
        raise LabelDBError(f"{path}: a label database must have the extension .db")
    if os.path.exists(path):
        raise FileExistsError(f"{path}: label database already exists")
    data = ASEAtomsData.create(path, distance_unit=DISTANCE_UNIT, property_unit_dict=dict(PROPERTY_UNITS))
    if level is not None:
        data.update_metadata(**{LEVEL_METADATA_KEY: dict(level)})
    return data


def db_level(path: str | os.PathLike) -> dict[str, Any] | None:
    """Level-of-theory settings stored in a label database's metadata (None if absent)."""
    with connect(str(path), use_lock_file=False) as conn:
        return conn.metadata.get(LEVEL_METADATA_KEY)


def db_embedding(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> EmbeddingSettings | None:
    """The embedding every row of the labels DB(s) was cut with (None when they hold no row).

    A model trained on them uses this embedding; rows cut with different embeddings (a changed
    ``system.embedding``) cannot train one model and raise :class:`LabelDBError` naming them.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: dict[tuple[float, float], str] = {}
    for path in paths:
        with connect(str(path), use_lock_file=False) as conn:
            for row in conn.select():
                try:
                    e = frame_embedding(row.key_value_pairs)
                except KeyError as err:
                    raise LabelDBError(f"{path}: row {row.id}: {err}") from err
                found.setdefault((e.cutoff, e.switch_width), f"{path} row {row.id}")
    if len(found) > 1:
        raise LabelDBError("labels cut with different embeddings (cutoff, switch_width in Å): "
                           + "; ".join(f"{k} in {v}" for k, v in found.items()))
    if not found:
        return None
    cutoff, width = next(iter(found))
    return EmbeddingSettings(cutoff=cutoff, switch_width=width)


def _check_row(where: str, atoms: Atoms, props: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Raise :class:`LabelDBError` naming ``where`` if properties or metadata break the contract."""
    n = len(atoms)
    missing = sorted(set(PROPERTY_UNITS) - set(props))
    extra = sorted(set(props) - set(PROPERTY_UNITS))
    if missing or extra:
        raise LabelDBError(f"{where}: properties must be exactly {sorted(PROPERTY_UNITS)} (missing {missing}, extra {extra})")
    shapes = {"energy": (1,), "forces": (n, 3), "qm_mask": (n,), "mm_charges": (n,), "mm_molecule": (n,)}
    for name, shape in shapes.items():
        got = np.shape(props[name])
        if got != shape:
            raise LabelDBError(f"{where}: property '{name}' has shape {got}, expected {shape}")
        if not np.all(np.isfinite(props[name])):
            raise LabelDBError(f"{where}: property '{name}' is not finite")
    missing_keys = [k for k in ROW_KEYS if k not in meta]
    if missing_keys:
        raise LabelDBError(f"{where}: key_value_pairs miss {missing_keys}")


def _write_rows(conn, rows: Iterable[tuple[Atoms, Mapping[str, np.ndarray], Mapping[str, Any]]], where: str) -> int:
    """Write (atoms, properties, key_value_pairs) rows to an open ASE db; returns the count."""
    n = 0
    for atoms, props, meta in rows:
        _check_row(f"{where}: row {n}", atoms, props, meta)
        structure = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        conn.write(
            structure,
            key_value_pairs=dict(meta),
            data={k: np.asarray(props[k], dtype=float) for k in PROPERTY_UNITS},
        )
        n += 1
    return n


def write_label_db(
    path: str | os.PathLike,
    labelled: Sequence[tuple[Atoms, Mapping[str, np.ndarray], Mapping[str, Any]]],
    level: Mapping[str, Any] | None = None,
) -> int:
    """Write labelled frames (frame, properties, key_value_pairs) as a new label DB, atomically."""

    def writer(tmp: str) -> None:
        create_label_db(tmp, level)
        with connect(tmp, use_lock_file=False) as conn:
            _write_rows(conn, labelled, str(path))

    atomic_write(path, writer)
    return len(labelled)


def append_label_rows(
    path: str | os.PathLike, rows: Sequence[tuple[Atoms, Mapping[str, np.ndarray], Mapping[str, Any]]]
) -> int:
    """Append rows to an existing label DB in one SQLite transaction (all or nothing)."""
    with connect(str(path), use_lock_file=False) as conn:
        return _write_rows(conn, rows, str(path))


def iter_label_rows(path: str | os.PathLike):
    """Yield (Atoms, properties, key_value_pairs) of every row of a label DB, in row order."""
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: label database not found")
    with connect(path, use_lock_file=False) as conn:
        units = conn.metadata.get("_property_unit_dict")
        if units != PROPERTY_UNITS:
            raise LabelDBError(f"{path}: property units {units} differ from the labels contract {PROPERTY_UNITS}")
        for row in conn.select():
            props = {k: np.asarray(row.data[k]) for k in PROPERTY_UNITS}
            yield row.toatoms(), props, dict(row.key_value_pairs)


def merge_label_dbs(paths: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> int:
    """Merge label DBs into one new DB (rows in input order, key_value_pairs kept), atomically.

    Empty inputs contribute nothing; if all are empty the result is a valid empty DB. Inputs
    labelled with different level-of-theory settings are refused.
    """
    levels = {str(p): db_level(p) for p in paths}
    distinct = {json.dumps(v, sort_keys=True) for v in levels.values() if v is not None}
    if len(distinct) > 1:
        raise LabelDBError(f"{out_path}: inputs were labelled at different levels of theory: {levels}")
    level = next((v for v in levels.values() if v is not None), None)

    def writer(tmp: str) -> None:
        create_label_db(tmp, level)
        with connect(tmp, use_lock_file=False) as conn:
            for p in paths:
                _write_rows(conn, iter_label_rows(p), str(p))

    atomic_write(out_path, writer)
    with connect(str(out_path), use_lock_file=False) as conn:
        return conn.count()


def read_labelled_frames(path: str | os.PathLike) -> list[Atoms]:
    """Frames of a label DB with ``qm_mask``/``initial_charges``/``mm_molecule``/info restored.

    Labels are attached as a ``SinglePointCalculator`` (energy eV, forces eV/Å), so
    ``atoms.get_potential_energy()`` and ``atoms.get_forces()`` return them.
    """
    frames = []
    for i, (atoms, props, meta) in enumerate(iter_label_rows(path)):
        atoms.set_array("qm_mask", np.asarray(props["qm_mask"]) > 0.5)
        atoms.set_initial_charges(np.asarray(props["mm_charges"], float))
        atoms.set_array("mm_molecule", np.rint(props["mm_molecule"]).astype(int))
        atoms.info.update(meta)
        validate_frame(atoms, where=f"{path}: row {i + 1}")
        atoms.calc = SinglePointCalculator(
            atoms, energy=float(props["energy"][0]), forces=np.asarray(props["forces"], float)
        )
        frames.append(atoms)
    return frames

