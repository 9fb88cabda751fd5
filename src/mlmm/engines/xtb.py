"""GFN2-xTB for the QM region of a Frame, in eV and Å.

:class:`XTBTerm` (tblite, in-process) has no point-charge embedding, so it sees only the QM atoms;
the QM–MM electrostatics of the xTB sampler are a fixed-charge mechanical embedding: the charges
of :func:`xtb_charges` in the force field's Coulomb term (:class:`mlmm.mm.OpenMMTerm`).

:class:`XTBEmbeddingTerm` runs the ``xtb`` program (Debian xtb 6.5.1) with its ``$embedding``
point charges: electrostatic embedding like the PySCF labels — the same embedding-weighted charges
q_a·w_g(a) (:mod:`mlmm.embedding`) —, with forces on the MM sites. That build reads the
point-charge file in Å and writes ``pcgrad`` in Eh/Bohr (pinned in tests/test_delta.py); it is
the Δ-learning baseline (``training.delta: xtb``).

xtb does not print ∂E/∂q_a, which the weights' force term needs. In GFN2-xTB the point charges
couple only to the shell charges of the QM atoms, through the kernel (r² + (2/(γ_sh + γ_a))²)^(−1/2)
(xtb ``src/embedding.f90``, ``jpot_pcem_gfn2``), and the SCC energy is stationary in them, so
∂E/∂q_a = Σ_sh q_sh k(r). With the pure point charges written here (γ_a = 99 Eh) the shell hardness
γ_sh ≲ 1 Eh changes k by < 1e-6 relative at r > 1 Å, and the shell charges sum to xtb's atomic
charges (file ``charges``): :func:`point_charge_potential` uses those with γ_sh left out.
tests/test_delta.py checks that this kernel and these charges reproduce ``pcgrad``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import CalculationFailed

from mlmm.embedding import weight_forces, weighted_charges
from mlmm.frames import qm_mask
from mlmm.units import BOHR_TO_ANGSTROM, COULOMB_EV_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV

#: Hardness γ (Eh) written for every point charge: xtb's marker of a pure point charge.
POINT_CHARGE_HARDNESS_EH: float = 99.0
#: Smoothing length 2/γ (Å) of xtb's point-charge kernel for that hardness (QM shell hardness neglected).
POINT_CHARGE_SMOOTHING_ANG: float = 2.0 / POINT_CHARGE_HARDNESS_EH * BOHR_TO_ANGSTROM


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
            from tblite.ase import TBLite  # imported here: the xtb-program term needs no tblite

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
    from tblite.ase import TBLite

    atoms = Atoms(symbols=list(symbols), positions=np.asarray(positions, float))
    atoms.calc = TBLite(method=method, charge=int(charge), multiplicity=int(multiplicity), verbosity=0)
    return np.asarray(atoms.get_charges(), float)


def point_charge_potential(qm_positions_ang: np.ndarray, qm_charges_e: np.ndarray, points_ang: np.ndarray) -> np.ndarray:
    """Potential (eV/e) of the QM atomic charges at ``points_ang`` with xtb's point-charge kernel:
    k_e Σ_A q_A / sqrt(r² + ℓ²), ℓ = :data:`POINT_CHARGE_SMOOTHING_ANG`."""
    d = np.asarray(points_ang, float)[:, None, :] - np.asarray(qm_positions_ang, float)[None]
    r2 = np.einsum("pak,pak->pa", d, d) + POINT_CHARGE_SMOOTHING_ANG**2
    return COULOMB_EV_ANGSTROM * (np.asarray(qm_charges_e, float)[None] / np.sqrt(r2)).sum(axis=1)


class XTBEmbeddingTerm:
    """GFN2-xTB of the QM atoms in the frame's MM point charges via the ``xtb`` program.

    ``compute(frame)`` returns ``energy`` (eV; QM electrons and nuclei in the field of the
    embedding-weighted MM charges, no MM–MM term — the same quantity as the PySCF labels),
    ``forces`` (eV/Å) on QM atoms and MM sites, including the weights' chain-rule term, and
    ``charges`` (xtb's atomic charges of the QM atoms, e). One scratch directory is reused per
    instance.
    """

    def __init__(self, executable: str = "xtb", *, accuracy: float = 1.0,
                 electronic_temperature_K: float = 300.0, timeout_s: float = 600.0) -> None:
        path = shutil.which(executable)
        if path is None:
            raise FileNotFoundError(f"{executable!r} not found on PATH (Debian: apt-get install xtb)")
        self.executable = path
        self.accuracy = float(accuracy)
        self.electronic_temperature_K = float(electronic_temperature_K)
        self.timeout_s = float(timeout_s)
        self._scratch = tempfile.TemporaryDirectory(prefix="mlmm_xtb_")
        self.workdir = Path(self._scratch.name)

    def compute(self, frame: Atoms) -> dict[str, Any]:
        """Energy (eV) and forces (eV/Å, all frame atoms) of the QM region in the MM charges."""
        mask = qm_mask(frame)
        charges = weighted_charges(frame)
        sites = np.flatnonzero(~mask & (charges != 0.0))
        qm_numbers, qm_pos = frame.numbers[mask], frame.positions[mask]
        work = self.workdir
        for name in ("pcgrad", "gradient", "energy", "coord.engrad", "xtbrestart", "charges", "wbo"):
            (work / name).unlink(missing_ok=True)
        lines = [str(len(qm_numbers)), "mlmm QM region (Angstrom)"]
        lines += [f"{z} {x:.10f} {y:.10f} {w:.10f}" for z, (x, y, w) in zip(qm_numbers, qm_pos)]
        (work / "coord.xyz").write_text("\n".join(lines) + "\n")
        control = [f"$chrg {int(frame.info['qm_charge'])}", f"$spin {int(frame.info['multiplicity']) - 1}",
                   "$scc", f"   temp={self.electronic_temperature_K}"]
        if len(sites):
            # q x y z γ: positions in Å for this build; γ = 99 marks a pure point charge (no hardness)
            pc = [str(len(sites))] + [
                f"{charges[k]:.10f} {x:.10f} {y:.10f} {w:.10f} {POINT_CHARGE_HARDNESS_EH:g}"
                for k, (x, y, w) in zip(sites, frame.positions[sites])
            ]
            (work / "pc.txt").write_text("\n".join(pc) + "\n")
            control += ["$embedding", "   input=pc.txt", "   gradient=pcgrad"]
        (work / "xcontrol").write_text("\n".join(control + ["$end"]) + "\n")
        cmd = [self.executable, "coord.xyz", "--gfn", "2", "--grad", "--input", "xcontrol",
               "--chrg", str(int(frame.info["qm_charge"])), "--uhf", str(int(frame.info["multiplicity"]) - 1),
               "--acc", str(self.accuracy), "--norestart"]
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), OMP_STACKSIZE="200M")
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=self.timeout_s, env=env)
        if proc.returncode != 0 or not (work / "coord.engrad").exists():
            raise CalculationFailed(f"xtb failed ({proc.returncode}): {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        energy_eh, grad_eh_bohr = _read_engrad(work / "coord.engrad", len(qm_numbers))
        qm_charges = np.loadtxt(work / "charges", ndmin=1)  # e, xtb's atomic charges of the QM atoms
        if qm_charges.shape != (len(qm_numbers),):
            raise RuntimeError(f"xtb charges file has shape {qm_charges.shape}, expected {(len(qm_numbers),)}")
        forces = np.zeros((len(frame), 3))
        forces[np.flatnonzero(mask)] = -grad_eh_bohr * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
        if len(sites):
            pcgrad = np.loadtxt(work / "pcgrad", ndmin=2)  # Eh/Bohr, at fixed (weighted) charges
            if pcgrad.shape != (len(sites), 3):
                raise RuntimeError(f"xtb pcgrad has shape {pcgrad.shape}, expected {(len(sites), 3)}")
            forces[sites] = -pcgrad * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
            phi = np.zeros(len(frame))
            phi[sites] = point_charge_potential(qm_pos, qm_charges, frame.positions[sites])
            forces += weight_forces(frame, phi)
        return {"energy": energy_eh * HARTREE_TO_EV, "forces": forces, "charges": qm_charges}


def _read_engrad(path: Path, n_atoms: int) -> tuple[float, np.ndarray]:
    """Energy (Eh) and gradient ((n,3) Eh/Bohr) from xtb's ``.engrad`` file (ORCA layout)."""
    values = [line.split()[0] for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if int(values[0]) != n_atoms:
        raise RuntimeError(f"{path}: {values[0]} atoms, expected {n_atoms}")
    energy = float(values[1])
    grad = np.array([float(v) for v in values[2 : 2 + 3 * n_atoms]]).reshape(n_atoms, 3)
    return energy, grad
