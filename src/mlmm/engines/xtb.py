"""GFN2-xTB (tblite) for the QM region of a Frame, in vacuum, in eV and Å.

tblite has no point-charge embedding, so the term sees only the QM atoms; the QM–MM
electrostatics of the xTB sampler are a fixed-charge mechanical embedding in
:class:`mlmm.mm.MMForceField` (charges from :func:`xtb_charges`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from ase import Atoms
from tblite.ase import TBLite

from mlmm.frames import qm_mask


class XTBTerm:
    """QM term (``compute(frame) -> {energy eV, forces eV/Å, charges e}``) with one reused tblite calculator."""

    def __init__(
        self,
        method: str = "GFN2-xTB",
        *,
        accuracy: float = 1.0,
        electronic_temperature_K: float = 300.0,
        max_iterations: int = 250,
    ) -> None:
        self.method = method
        self.accuracy = accuracy
        self.electronic_temperature_K = electronic_temperature_K
        self.max_iterations = max_iterations
        self._atoms: Atoms | None = None
        self._key: tuple | None = None

    def _qm_atoms(self, numbers: np.ndarray, positions_ang: np.ndarray, charge: int, multiplicity: int) -> Atoms:
        """The cached QM Atoms with its tblite calculator; rebuilt when composition/charge/spin change."""
        key = (tuple(numbers), int(charge), int(multiplicity))
        if self._atoms is None or key != self._key:
            self._atoms = Atoms(numbers=numbers, positions=positions_ang)
            self._atoms.calc = TBLite(
                method=self.method,
                charge=int(charge),
                multiplicity=int(multiplicity),
                accuracy=self.accuracy,
                electronic_temperature=self.electronic_temperature_K,
                max_iterations=self.max_iterations,
                verbosity=0,
            )
            self._key = key
        else:
            self._atoms.positions = positions_ang
        return self._atoms

    def compute(self, frame: Atoms) -> dict[str, Any]:
        """Vacuum GFN2-xTB on the frame's QM atoms; MM sites get zero force."""
        mask = qm_mask(frame)
        atoms = self._qm_atoms(frame.numbers[mask], frame.positions[mask],
                               frame.info["qm_charge"], frame.info["multiplicity"])
        forces = np.zeros((len(frame), 3))
        energy = float(atoms.get_potential_energy())
        forces[mask] = atoms.get_forces()
        return {"energy": energy, "forces": forces, "charges": np.array(atoms.calc.results["charges"])}


def xtb_charges(symbols: Sequence[str], positions: np.ndarray, charge: int, multiplicity: int,
                method: str = "GFN2-xTB") -> np.ndarray:
    """GFN2-xTB Mulliken charges (e) of a molecule (positions in Å), in vacuum."""
    atoms = Atoms(symbols=list(symbols), positions=np.asarray(positions, float))
    atoms.calc = TBLite(method=method, charge=int(charge), multiplicity=int(multiplicity), verbosity=0)
    return np.asarray(atoms.get_charges(), float)
