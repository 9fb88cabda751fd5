"""Utilities shared by the stage functions of every rule: JSON I/O, thread limits, system loading."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from mlmm.frames import atomic_write
from mlmm.settings import SystemSettings


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (NumPy scalars/arrays converted)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    def writer(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=2, default=default)
            fh.write("\n")

    atomic_write(path, writer)


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as fh:
        return json.load(fh)


def set_threads(threads: int) -> None:
    """Limit BLAS/OpenMP/torch/OpenMM-CPU threads to the job's allocation."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENMM_CPU_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def system_from_config(structure: str, system: SystemSettings):
    """The System of ``structure`` (the rule's input path) with the QM region of the ``system`` settings."""
    from mlmm.system import load_system

    return load_system(
        structure,
        system.qm_selection,
        qm_charge=system.qm_charge,
        multiplicity=system.multiplicity,
        force_field=system.force_field,
        topology=system.topology,
        parameters=system.parameters,
        gromacs_include=system.gromacs_include,
        nonbonded_method=system.nonbonded.method,
        nonbonded_cutoff_ang=system.nonbonded.cutoff,
        dispersion_correction=system.nonbonded.dispersion_correction,
        ewald_tolerance=system.nonbonded.ewald_tolerance,
        link_atoms=system.link_atoms,
    )

