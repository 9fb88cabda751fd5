"""Ground-state labels for a list of Frames, robust to single bad frames.

Each frame is tried with the configured level of theory; on any failure (SCF not converged,
a linear-algebra error, ...) it is retried once with the stabilised SCF settings. A frame that
still fails is recorded in the report with its reason (quarantine) and the run goes on.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

import numpy as np
from ase import Atoms
from tqdm import tqdm

from mlmm.engines.pyscf_qmmm import (
    PYSCF_VERSION,
    QMMMResult,
    SCFNotConverged,
    qmmm_energy_forces,
)
from mlmm.embedding import INFO_KEYS
from mlmm.frames import LINK_INFO, REQUIRED_INFO, FrameError, mm_charges, qm_mask, validate_frame
from mlmm.settings import LevelSettings
from mlmm.labeling.db import frame_id

#: One labelled frame: (Frame, schnetpack properties, row key_value_pairs); see docs/CONTRACTS.md.
Labelled = tuple[Atoms, dict[str, np.ndarray], dict[str, Any]]

_LOG = logging.getLogger(__name__)


def failure_reason(exc: BaseException) -> str:
    """Short machine-readable status for a failed attempt (used as the report's ``status``)."""
    if isinstance(exc, SCFNotConverged):
        return "scf_not_converged"
    if isinstance(exc, np.linalg.LinAlgError):
        return f"linalg_error: {exc}"
    if isinstance(exc, FrameError):
        return f"invalid_frame: {exc}"
    return f"error: {type(exc).__name__}: {exc}"


def label_properties(frame: Atoms, result: QMMMResult) -> dict[str, np.ndarray]:
    """schnetpack row properties: energy (eV, (1,)), forces (eV/Å), qm_mask (0/1), mm_charges (e),
    mm_molecule (group index, -1 on QM atoms)."""
    return {
        "energy": np.array([result.energy_ev], dtype=float),
        "forces": np.asarray(result.forces_ev_per_ang, dtype=float),
        "qm_mask": qm_mask(frame).astype(float),
        "mm_charges": mm_charges(frame).astype(float),
        "mm_molecule": np.asarray(frame.arrays["mm_molecule"], float),
    }


def label_metadata(frame: Atoms, level: LevelSettings) -> dict[str, Any]:
    """Row key_value_pairs of a successfully labelled frame (docs/CONTRACTS.md)."""
    info = frame.info
    meta: dict[str, Any] = {
        "level": level.label,
        "status": "ok",
        "pyscf_version": PYSCF_VERSION,
        "frame_id": frame_id(frame),
    }
    for key in REQUIRED_INFO:
        value = info[key]
        if key in ("iteration", "seed", "qm_charge", "multiplicity"):
            meta[key] = int(value)
        elif key in INFO_KEYS:
            meta[key] = float(value)
        else:
            meta[key] = str(value)
    if LINK_INFO in info:  # the link atoms of a covalent boundary (mlmm.frames)
        meta[LINK_INFO] = str(info[LINK_INFO])
    return meta


def label_frames(
    frames: Sequence[Atoms],
    level: LevelSettings,
    *,
    progress: bool = True,
    log: logging.Logger | None = None,
    on_labelled: Callable[[Atoms, dict[str, np.ndarray], dict[str, Any]], None] | None = None,
) -> tuple[list[Labelled], list[dict[str, Any]]]:
    """Label ``frames`` with PySCF QM/MM; never aborts on a bad frame.

    Returns ``(labelled, report)``: ``labelled`` holds (frame, properties, key_value_pairs) of
    the frames that succeeded, in input order; ``report`` has one entry per input frame with
    ``frame_id``, ``status`` ('ok' or the failure reason), per-attempt reasons and timings (s).
    ``on_labelled`` is called right after each success (used for checkpointing).
    """
    log = log or _LOG
    labelled: list[Labelled] = []
    report: list[dict[str, Any]] = []
    for index, frame in enumerate(tqdm(frames, desc=f"QM/MM {level.label}", unit="frame", disable=not progress)):
        start = time.perf_counter()
        attempts: list[dict[str, Any]] = []
        result: QMMMResult | None = None
        fid = frame_id(frame)
        for stabilised in (False, True):
            t0 = time.perf_counter()
            try:
                validate_frame(frame, where=f"frame {index} ({fid})")
                result = qmmm_energy_forces(frame, level, stabilised=stabilised)
            except Exception as exc:  # a bad frame must not stop the chunk; the reason goes to the report
                reason = failure_reason(exc)
                attempts.append({"stabilised": stabilised, "status": reason, "wall_s": time.perf_counter() - t0})
                log.warning("frame %d (%s), %s SCF: %s", index, fid, "stabilised" if stabilised else "default", exc)
                if isinstance(exc, FrameError):
                    break
                continue
            attempts.append({"stabilised": stabilised, "status": "ok", "wall_s": result.wall_time_s})
            break
        entry: dict[str, Any] = {
            "index": index,
            "frame_id": fid,
            "status": "ok" if result is not None else attempts[-1]["status"],
            "attempts": attempts,
            "wall_s": time.perf_counter() - start,
        }
        if result is not None:
            props, meta = label_properties(frame, result), label_metadata(frame, level)
            entry.update(
                energy_ev=result.energy_ev,
                n_scf_cycles=result.n_scf_cycles,
                stabilised=result.stabilised,
            )
            labelled.append((frame, props, meta))
            if on_labelled is not None:
                on_labelled(frame, props, meta)
            log.info("frame %d (%s): E = %.6f eV, %d SCF cycles, %.2f s", index, fid, result.energy_ev,
                     result.n_scf_cycles, entry["wall_s"])
        else:
            log.error("frame %d (%s) quarantined: %s", index, fid, entry["status"])
        report.append(entry)
    return labelled, report
