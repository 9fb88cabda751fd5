"""Trajectories of the full system in formats MDAnalysis and VMD read: DCD + PDB topology, both in
the structure file's atom order (the force field's topology)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from ase import Atoms

from mlmm.frames import atomic_write

if TYPE_CHECKING:
    from mlmm.system import System


def write_topology(system: "System", path: str) -> None:
    """The system's force-field topology as PDB (atom names, residues, elements, CONECT for
    non-standard residues; order and box of the DCD frames) at its input positions."""
    import openmm.app as app
    import openmm.unit as unit

    def writer(tmp: str) -> None:
        with open(tmp, "w") as fh:
            app.PDBFile.writeFile(system.mm.topology, system.mm.positions_ang * unit.angstrom, fh, keepIds=True)

    atomic_write(path, writer)


def write_dcd(system: "System", snapshots: Sequence[Atoms], path: str, timestep_ps: float) -> None:
    """Snapshots (full system in mlmm order, positions in Å) as a DCD trajectory in the structure
    file's atom order. ``timestep_ps`` is the time between stored frames, so MDAnalysis reports real times."""
    import MDAnalysis as mda

    n_atoms = len(system.atoms)
    universe = mda.Universe.empty(n_atoms, trajectory=True)

    def writer(tmp: str) -> None:
        with mda.Writer(tmp, n_atoms=n_atoms, format="DCD", dt=timestep_ps) as out:
            for snap in snapshots:
                if len(snap) != n_atoms:
                    raise ValueError(f"{path}: a snapshot has {len(snap)} atoms, {system.source} has {n_atoms}")
                universe.atoms.positions = system.to_file_order(snap.positions)
                if snap.pbc.any():
                    universe.dimensions = np.r_[snap.cell.cellpar()]
                out.write(universe.atoms)

    atomic_write(path, writer)
