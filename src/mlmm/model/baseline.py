"""Δ-learning baselines: the model learns reference − baseline; MD evaluates baseline + model.

``training.delta: xtb`` (Gómez-Flores et al., JCTC 2022, with GFN2-xTB in place of DFTB): the
baseline is GFN2-xTB of the QM region in the MM point charges (electrostatic embedding via the
``xtb`` program, QM term ``xtb_point_charges`` of :mod:`mlmm.potentials`), the same energy
decomposition as the PySCF labels, so the correction is a smooth, small function of the QM geometry and the MM field.

:func:`write_delta_db` turns a labels DB into a labels DB of corrections (same contract, level
metadata tagged with the baseline); the ``delta`` potential of :mod:`mlmm.potentials` adds the
baseline back at run time for members trained on corrections.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mlmm.labeling.db import db_level, read_labelled_frames, write_label_db
from mlmm.potentials import baseline_term
from mlmm.records import Record

log = logging.getLogger(__name__)


@dataclass
class DeltaStats(Record):
    """``{labelset}/delta_{baseline}.json``: the Δ labels of one labels DB — the baseline, the rows,
    mean and std of the energy correction reference − baseline (eV) and the force MAE of the
    baseline against the reference on QM atoms and on MM sites (eV/Å); None without rows (MM: without MM sites)."""

    baseline: str
    n_frames: int
    energy_correction_mean_ev: float | None
    energy_correction_std_ev: float | None
    baseline_force_mae_qm: float | None
    baseline_force_mae_mm: float | None


def write_delta_db(labels_db: str, out_db: str, baseline: str) -> DeltaStats:
    """Labels DB of corrections: energy/forces = reference − baseline (eV, eV/Å) for every row.

    The level metadata gains ``delta: <baseline>`` so corrections never merge with plain labels.
    Returns the statistics of the corrections and of the baseline's force errors.
    """
    term = baseline_term(baseline)
    if term is None:
        raise ValueError("write_delta_db needs a baseline, got 'none'")
    rows, de, qm_err, mm_err = [], [], [], []
    for frame in read_labelled_frames(labels_db):
        ref_e, ref_f = float(frame.get_potential_energy()), np.asarray(frame.get_forces(), float)
        base = term.compute(frame)
        mask = np.asarray(frame.arrays["qm_mask"], bool)
        props = {
            "energy": np.array([ref_e - float(base["energy"])]),
            "forces": ref_f - np.asarray(base["forces"], float),
            "qm_mask": mask.astype(float),
            "mm_charges": np.asarray(frame.get_initial_charges(), float),
            "mm_molecule": np.asarray(frame.arrays["mm_molecule"], float),
        }
        meta = {k: frame.info[k] for k in frame.info if isinstance(frame.info[k], (str, int, float, bool))}
        rows.append((frame, props, meta))
        de.append(props["energy"][0])
        qm_err.append(np.abs(props["forces"][mask]).ravel())
        mm_err.append(np.abs(props["forces"][~mask]).ravel())
    level = {**(db_level(labels_db) or {}), "delta": baseline}
    write_label_db(out_db, rows, level=level)
    stats = DeltaStats(
        baseline=baseline,
        n_frames=len(rows),
        energy_correction_mean_ev=float(np.mean(de)) if de else None,
        energy_correction_std_ev=float(np.std(de)) if de else None,
        baseline_force_mae_qm=float(np.concatenate(qm_err).mean()) if qm_err else None,
        baseline_force_mae_mm=float(np.concatenate(mm_err).mean()) if mm_err and sum(map(len, mm_err)) else None,
    )
    log.info("%s: Δ labels written to %s: %s", labels_db, out_db, stats)
    return stats

