"""File-level stage functions of the system, labeling and summary rules (paths in, paths out).

Each stage function does one Snakemake job: it reads its inputs, calls the library, writes its
outputs atomically (temp file + rename) and returns the job's record, if it has one. Rule scripts
run them through :func:`mlmm.runner.run_stage` (logging, threads, tracebacks in the rule's log,
the record written), so everything is testable without Snakemake. The other stages
live beside their library code: ``mlmm.sampling.stages``, ``mlmm.model.stages``,
``mlmm.al.stages`` and ``mlmm.dynamics.stages``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mlmm.frames import write_frames
from mlmm.jobs import read_json, set_threads, system_from_config, write_json
from mlmm.labeling.reports import ChunkReport, LabelReport
from mlmm.records import Record
from mlmm.settings import LevelSettings, SystemSettings

log = logging.getLogger(__name__)


@dataclass
class SystemInfo(Record):
    """``system/system.json``: the validated system; the MM sites and their charge (e) within the
    embedding cutoff of the first Frame; the cell edge lengths in Å; the QM charge in e; the cut
    covalent bonds (QM atom – MM atom, with their link atoms) of a covalent boundary."""

    structure: str
    n_atoms_total: int
    n_qm: int
    qm_symbols: list[str]
    link_bonds: list[str]
    n_mm_in_cutoff: int
    mm_charge_in_cutoff_e: float
    periodic: bool
    cell_ang: list[float]
    qm_charge: int
    multiplicity: int


def prepare_system(structure: str, system_settings: SystemSettings, frame_out: str) -> SystemInfo:
    """Validate the structure and QM selection; write the first Frame; return the system summary."""
    system = system_from_config(structure, system_settings)
    frame, index = system.cut_frame(
        system.atoms.positions,
        system_settings.embedding,
        sampler="initial",
        iteration=0,
        source=f"{structure}:0",
        seed=0,
    )
    write_frames(frame_out, [frame])
    mm = ~frame.arrays["qm_mask"]
    info = SystemInfo(
        structure=structure,
        n_atoms_total=len(system.atoms),
        n_qm=int(system.n_qm),
        qm_symbols=frame.get_chemical_symbols()[: system.n_qm],
        link_bonds=[f"{system.atom_names[link.qm]}–{system.atom_names[link.mm]} ({system.resnames[link.mm]} "
                    f"{system.resids[link.mm]}, g = {link.ratio:.4f})" for link in system.links],
        n_mm_in_cutoff=int(mm.sum()),
        mm_charge_in_cutoff_e=float(np.round(frame.get_initial_charges()[mm].sum(), 6)),
        periodic=bool(system.atoms.pbc.any()),
        cell_ang=system.atoms.cell.lengths().tolist(),
        qm_charge=system.qm_charge,
        multiplicity=system.multiplicity,
    )
    log.info("system: %s", info.to_dict())
    return info


def label_chunk(
    frames_path: str,
    chunk_index: int,
    chunk_size: int,
    level: LevelSettings,
    db_out: str,
    report_out: str,
    threads: int = 1,
) -> None:
    """Label one chunk with PySCF QM/MM (resumes from a partial checkpoint of a killed run); the
    ``threads`` are single-threaded worker processes, for bit-reproducible labels."""
    set_threads(1)
    from mlmm.engines.pyscf_qmmm import check_level
    from mlmm.labeling.chunks import label_chunk as run

    run(frames_path, chunk_index, chunk_size, check_level(level), db_out, report_out, log_path=None, workers=threads)


def merge_labels(dbs: Sequence[str], reports: Sequence[str], db_out: str) -> LabelReport:
    """Merge chunk DBs into the iteration's schnetpack DB; the chunk reports merged into one."""
    from mlmm.labeling.db import merge_label_dbs

    merge_label_dbs(list(dbs), db_out)
    report = LabelReport.merge([ChunkReport.from_json(p) for p in reports])
    log.info("merged %d labelled frames; %d failed", report.n_ok, report.n_failed)
    return report


def summary(
    label_dbs: Sequence[str],
    label_reports: Sequence[str],
    evaluations: Sequence[str],
    selections: Sequence[str],
    models: Sequence[str],
    extras: dict[str, str],
    out: str,
) -> None:
    """Collect the paths of the final products and the key figures into one JSON file.

    ``extras`` maps summary keys to JSON files registered by rule files (production analysis,
    stability comparison, ...); each is included whole.
    """
    from mlmm.al.selection import SelectionRecord
    from mlmm.model.stages import EnsembleEvaluation

    reports = [LabelReport.from_json(p) for p in label_reports]
    evals = [EnsembleEvaluation.from_json(p).to_dict() for p in evaluations]
    sels = [SelectionRecord.from_json(p) for p in selections]
    converged_at = next((s.converged_at for s in sels if s.converged), None)
    data = {
        "final_models": list(models),
        "label_databases": list(label_dbs),
        "labels_per_iteration": [r.n_ok for r in reports],
        "failed_labels_per_iteration": [r.n_failed for r in reports],
        "labels_total": int(sum(r.n_ok for r in reports)),
        "test_errors_per_iteration": evals,
        "test_errors_final": evals[-1],
        "al_iterations_run": len(sels),
        "al_iterations_with_new_labels": sum(s.n_selected > 0 for s in sels),
        "converged": converged_at is not None,
        "converged_at_iteration": converged_at,
        "selection_per_iteration": [
            {k: getattr(s, k) for k in ("iteration", "n_explored", "n_selected", "fraction_accurate", "any_breach", "criteria", "reason")}
            for s in sels
        ],
        "units": {"energy": "eV", "force": "eV/Å", "sigma": "eV/Å", "length": "Å", "time": "fs"},
    }
    for key, path in extras.items():
        data[key] = read_json(path)
    log.info("summary: %s", json.dumps(data, indent=1, default=str))
    write_json(out, data)
