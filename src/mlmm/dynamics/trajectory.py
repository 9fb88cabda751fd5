"""Trajectories of the full system in formats MDAnalysis and VMD read: DCD + PDB topology."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from mlmm.frames import atomic_write


def write_topology(structure: str, path: str) -> None:
    """The input structure as PDB (atom names, residues, order of the DCD frames)."""
    import MDAnalysis as mda

    universe = mda.Universe(structure)
    atomic_write(path, lambda tmp: universe.atoms.write(tmp, file_format="PDB"))


def write_dcd(structure: str, snapshots: Sequence[Atoms], path: str, timestep_ps: float) -> None:
    """Snapshots (in the input's atom order, positions in Å) as a DCD trajectory.

    ``timestep_ps`` is the time between stored frames, so MDAnalysis reports real times.
    """
    import MDAnalysis as mda

    universe = mda.Universe(structure)
    if snapshots and len(snapshots[0]) != universe.atoms.n_atoms:
        raise ValueError(f"{path}: snapshots have {len(snapshots[0])} atoms, {structure} has {universe.atoms.n_atoms}")

    def writer(tmp: str) -> None:
        with mda.Writer(tmp, n_atoms=universe.atoms.n_atoms, format="DCD", dt=timestep_ps) as out:
            for snap in snapshots:
                universe.atoms.positions = snap.positions
                if snap.pbc.any():
                    universe.dimensions = np.r_[snap.cell.cellpar()]
                out.write(universe.atoms)

    atomic_write(path, writer)
