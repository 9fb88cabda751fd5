"""Trajectories of the full system in formats MDAnalysis and VMD read: DCD + PDB topology, both in
the structure file's atom order (the force field's topology)."""

from __future__ import annotations

import os
import struct
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
    MDAnalysis and VMD read), written to ``<path>.partial`` and renamed into place by
    :meth:`close`, so a killed job leaves no half file. ``interval_fs``: time between snapshots.
    ``resume``: (bytes, snapshots) of a partial file a checkpoint recorded; the file is cut back to
    them and continued (snapshots written after the checkpoint are dropped)."""

    def __init__(self, path: str | os.PathLike, system: "System", interval_fs: float,
                 resume: tuple[int, int] | None = None) -> None:
        import openmm.app as app
        import openmm.unit as unit

        self.system = system
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        if resume is None:
            self.file = open(self.partial, "w+b")
            self.dcd = app.DCDFile(self.file, system.mm.topology, interval_fs * unit.femtosecond)
            self.count = 0
        else:
            length, count = resume
            self.file = open(self.partial, "r+b")
            self.file.truncate(length)
            self.file.seek(8)
            self.file.write(struct.pack("<i", count))  # the header's snapshot count and last step, as DCDFile keeps them
            self.file.seek(20)
            self.file.write(struct.pack("<i", count - 1))
            self.dcd = app.DCDFile(self.file, system.mm.topology, interval_fs * unit.femtosecond, append=True)
            self.count = count

    def write(self, positions_ang: np.ndarray, box_vectors_ang: np.ndarray | None = None) -> None:
        """One snapshot: full-system positions (Å, mlmm order), in the system's box or ``box_vectors_ang``."""
        import openmm.unit as unit

        box = self.system.mm.box_vectors_ang if box_vectors_ang is None else box_vectors_ang
        self.dcd.writeModel(self.system.to_file_order(np.asarray(positions_ang, float)) * unit.angstrom,
                            periodicBoxVectors=None if box is None else box * unit.angstrom)
        self.count += 1

    def mark(self) -> tuple[int, int]:
        """(bytes, snapshots) written so far, flushed: where a resumed run continues the file."""
        self.file.flush()
        os.fsync(self.file.fileno())
        return self.file.seek(0, os.SEEK_END), self.count

    def close(self) -> None:
        self.file.close()
        os.replace(self.partial, self.path)
