"""Trajectories of the full system in formats MDAnalysis and VMD read: DCD + PDB topology, both in
the structure file's atom order (the force field's topology)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

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


class DCDTrajectory:
    """DCD of full-system snapshots in the structure file's atom order (OpenMM's DCDFile, which
    MDAnalysis and VMD read), written to a temporary file and renamed into place by
    :meth:`close`, so a killed job leaves no half file. ``interval_fs``: time between snapshots."""

    def __init__(self, path: str | os.PathLike, system: "System", interval_fs: float) -> None:
        import openmm.app as app
        import openmm.unit as unit

        self.system = system
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.file = os.fdopen(fd, "wb")
        self.dcd = app.DCDFile(self.file, system.mm.topology, interval_fs * unit.femtosecond)

    def write(self, positions_ang: np.ndarray) -> None:
        """One snapshot: full-system positions (Å, mlmm order), in the system's box."""
        import openmm.unit as unit

        box = self.system.mm.box_vectors_ang
        self.dcd.writeModel(self.system.to_file_order(np.asarray(positions_ang, float)) * unit.angstrom,
                            periodicBoxVectors=None if box is None else box * unit.angstrom)

    def close(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.path)
