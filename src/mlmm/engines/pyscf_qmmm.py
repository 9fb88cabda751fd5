"""PySCF QM/MM reference labels with electrostatic embedding (MM sites as point charges).

The QM atoms of a Frame form the PySCF molecule; every MM site enters the one-electron
Hamiltonian as a point charge (``pyscf.qmmm.mm_charge``) carrying its embedding-weighted charge
q_a·w_g(a) (:mod:`mlmm.embedding`). The energy is that of the QM electrons and nuclei in the field
of these charges (QM–QM nuclear repulsion and QM-nuclei–MM Coulomb included, MM–MM excluded), as
in DESIGN.md §2. Forces are −dE/dR on every Frame atom: at fixed charges, QM atoms from the QM/MM
nuclear gradient and MM sites from the derivative of the electron–charge integrals contracted with
the density plus the nuclei–charge Coulomb term; plus the chain rule through the weights,
−Σ_a φ_a q_a ∇w_g(a), with φ_a = ∂E/∂q_a the potential of the QM nuclei and electrons at site a
(:func:`potential_at_points`; the SCF energy is stationary, so no response term enters).

Units: mlmm speaks eV, Å, e; PySCF gets Å coordinates with an explicit ``unit`` and returns
Hartree and Hartree/Bohr, converted once here with :mod:`mlmm.units`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from pyscf import __version__ as PYSCF_VERSION
from pyscf import df, dft, gto, qmmm, scf

from mlmm.embedding import weight_forces, weighted_charges
from mlmm.frames import qm_mask, validate_frame
from mlmm.settings import LevelSettings
from mlmm.units import ANGSTROM_TO_BOHR, BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV

__all__ = [
    "PYSCF_VERSION",
    "LevelOfTheoryError",
    "QMMMResult",
    "SCFNotConverged",
    "build_molecule",
    "check_level",
    "embedded_scf",
    "make_scf",
    "potential_at_points",
    "qmmm_energy_forces",
    "run_scf",
    "weight_chain_forces",
]
#: Bytes of the 3-centre integral block of :func:`potential_at_points`.
_POTENTIAL_BLOCK_BYTES = 2.0e8

#: Settings of the stabilised retry (see :func:`qmmm_energy_forces`).
STABILISED_LEVEL_SHIFT_HARTREE: float = 0.3
STABILISED_DAMP: float = 0.5
STABILISED_DAMP_CYCLES: int = 8


class LevelOfTheoryError(ValueError):
    """The level of theory names a method or basis PySCF does not know."""


class SCFNotConverged(RuntimeError):
    """The SCF did not reach ``conv_tol`` within ``max_cycle`` iterations."""

    def __init__(self, message: str, *, n_cycles: int, energy_ev: float) -> None:
        super().__init__(message)
        self.n_cycles = n_cycles
        self.energy_ev = energy_ev


def check_level(level: LevelSettings, source: str = "labeling.level") -> LevelSettings:
    """``level`` itself once PySCF knows its method (``hf`` or a libxc functional) and basis.

    The schema checks types and ranges; this checks the names against PySCF, so a typo stops
    the labeling job at once with ``source.field`` named instead of failing in the first SCF.
    """
    if not level.is_hf:
        try:
            dft.libxc.parse_xc(level.method)
        except KeyError as err:
            raise LevelOfTheoryError(
                f"{source}.method: {level.method!r} is neither 'hf' nor a functional known to PySCF/libxc"
            ) from err
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gto.basis.load(level.basis.strip().lower(), "H")
    except Exception as err:  # PySCF raises BasisNotFoundError, KeyError or RuntimeError by format
        raise LevelOfTheoryError(f"{source}.basis: {level.basis!r} is not a basis set PySCF knows") from err
    return level


@dataclass
class QMMMResult:
    """QM/MM energy (eV) and forces (eV/Å, on all Frame atoms) plus SCF diagnostics."""

    energy_ev: float
    forces_ev_per_ang: np.ndarray
    mulliken_charges_e: np.ndarray
    dipole_e_ang: np.ndarray
    n_scf_cycles: int
    converged: bool
    stabilised: bool
    wall_time_s: float


def build_molecule(frame: Atoms, basis: str) -> gto.Mole:
    """PySCF molecule of the QM atoms of ``frame`` (Å), with the Frame's QM charge and multiplicity."""
    mask = qm_mask(frame)
    multiplicity = int(frame.info["multiplicity"])
    return gto.M(
        atom=[(s, tuple(p)) for s, p in zip(np.asarray(frame.get_chemical_symbols())[mask], frame.positions[mask])],
        unit="Angstrom",
        basis=basis,
        charge=int(frame.info["qm_charge"]),
        spin=multiplicity - 1,
        verbose=0,
    )


def make_scf(mol: gto.Mole, level: LevelSettings, mm_positions_ang: np.ndarray, mm_charges_e: np.ndarray):
    """SCF object (R/U HF or KS, optionally density fitted) embedded in the MM point charges."""
    closed_shell = mol.spin == 0
    if level.is_hf:
        mf = scf.RHF(mol) if closed_shell else scf.UHF(mol)
    else:
        mf = dft.RKS(mol, xc=level.method) if closed_shell else dft.UKS(mol, xc=level.method)
        mf.grids.level = level.grid_level
    if level.density_fit:
        mf = mf.density_fit()
    if len(mm_charges_e):
        mf = qmmm.mm_charge(mf, mm_positions_ang, mm_charges_e, unit="Angstrom")
    mf.conv_tol = level.conv_tol
    mf.max_cycle = level.max_cycle
    mf.verbose = 0
    return mf


def embedded_scf(frame: Atoms, level: LevelSettings):
    """(molecule, SCF object) of the Frame's QM region in its MM sites, each carrying the weighted
    charge q_a·w_g(a) (e) of :func:`mlmm.embedding.weighted_charges`; not yet run."""
    mask = qm_mask(frame)
    mol = build_molecule(frame, level.basis)
    return mol, make_scf(mol, level, frame.positions[~mask], weighted_charges(frame)[~mask])


def potential_at_points(mol: gto.Mole, dm_ao: np.ndarray, points_ang: np.ndarray) -> np.ndarray:
    """Electrostatic potential (Hartree/e) of the QM nuclei and the electron density ``dm_ao``
    (AO basis, total) at ``points_ang`` (Å): Σ_A Z_A/|R_A − r| − Tr[D ⟨μ|1/|r' − r||ν⟩].

    It is ∂E/∂q of a point charge q at r for an energy stationary in the density (SCF, or the
    excited-state Lagrangian with its relaxed density). The integrals are PySCF's ``int3c2e``
    with point-like s functions at r, as ``pyscf.qmmm`` builds the one-electron term of the charges.
    """
    pts = np.asarray(points_ang, float).reshape(-1, 3) * ANGSTROM_TO_BOHR
    dist = np.linalg.norm(pts[:, None, :] - mol.atom_coords()[None], axis=2)
    phi = (mol.atom_charges()[None, :] / dist).sum(axis=1)
    block = max(1, int(_POTENTIAL_BLOCK_BYTES // (8 * mol.nao**2)))
    for i0 in range(0, len(pts), block):
        fake = gto.fakemol_for_charges(pts[i0 : i0 + block])
        j3c = df.incore.aux_e2(mol, fake, intor="int3c2e", aosym="s1")  # (nao, nao, n_points)
        phi[i0 : i0 + block] -= np.einsum("ijk,ij->k", j3c, dm_ao)
    return phi


def weight_chain_forces(frame: Atoms, mol: gto.Mole, dm_ao: np.ndarray) -> np.ndarray:
    """The embedding weights' force term (eV/Å, all Frame atoms) for the density ``dm_ao``:
    :func:`mlmm.embedding.weight_forces` with φ_a of :func:`potential_at_points` in eV/e."""
    mask = qm_mask(frame)
    phi = np.zeros(len(frame))
    phi[~mask] = potential_at_points(mol, dm_ao, frame.positions[~mask]) * HARTREE_TO_EV
    return weight_forces(frame, phi)


def run_scf(mf, level: LevelSettings, stabilised: bool) -> tuple[Any, int]:
    """Converge ``mf``; return the converged SCF object and the number of SCF iterations used.

    The stabilised route first runs damped, level-shifted DIIS from a superposition-of-atoms
    guess, then, if that has not converged, continues from its orbitals with the second-order
    (Newton, SOSCF) solver, which converges robustly from a reasonable starting point.
    """
    counter = {"n": 0}

    def count(envs: dict[str, Any]) -> None:
        counter["n"] += 1

    if not stabilised:
        mf.callback = count
        mf.kernel()
        return mf, counter["n"]
    mf.init_guess = "atom"
    mf.level_shift = STABILISED_LEVEL_SHIFT_HARTREE
    mf.damp = STABILISED_DAMP
    mf.diis_start_cycle = STABILISED_DAMP_CYCLES
    mf.callback = count
    mf.kernel()
    if mf.converged:
        return mf, counter["n"]
    n_diis = counter["n"]
    newton = mf.newton()
    newton.level_shift = 0.0
    newton.damp = 0.0
    newton.max_cycle = level.max_cycle
    newton.callback = count
    counter["n"] = 0
    newton.kernel(mf.mo_coeff, mf.mo_occ)
    # the Newton kernel reports once more after its last macro iteration
    return newton, n_diis + max(counter["n"] - 1, 0)


def qmmm_energy_forces(frame: Atoms, level: LevelSettings, *, stabilised: bool = False) -> QMMMResult:
    """QM/MM energy (eV) and forces (eV/Å) of a Frame with its MM sites as point charges.

    Raises :class:`SCFNotConverged` if the SCF does not converge; ``stabilised=True`` is the
    retry setting (atom guess, level shift and damping, then SOSCF; up to 2×``max_cycle``).
    """
    validate_frame(frame)
    start = time.perf_counter()
    mask = qm_mask(frame)
    mol, mf = embedded_scf(frame, level)
    mf, n_cycles = run_scf(mf, level, stabilised)
    if not mf.converged:
        raise SCFNotConverged(
            f"SCF ({level.label}, {'stabilised' if stabilised else 'default'}) not converged to "
            f"{level.conv_tol:g} Eh in {n_cycles} iterations",
            n_cycles=n_cycles,
            energy_ev=float(mf.e_tot) * HARTREE_TO_EV,
        )
    grad = mf.Gradients()
    grad_qm = grad.kernel()  # Eh/Bohr, includes the MM field on QM electrons and nuclei
    forces = np.zeros((len(frame), 3))
    forces[mask] = -grad_qm * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    dm = mf.make_rdm1()
    dm_total = dm if dm.ndim == 2 else dm.sum(axis=0)
    if (~mask).any():
        grad_mm = grad.grad_hcore_mm(dm_total) + grad.grad_nuc_mm()  # at fixed (weighted) charges
        forces[~mask] = -grad_mm * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
        forces += weight_chain_forces(frame, mol, dm_total)
    _, mulliken = mf.mulliken_pop(mol, dm, verbose=0)
    dipole_au = mf.dip_moment(mol, dm, unit="AU", verbose=0)
    return QMMMResult(
        energy_ev=float(mf.e_tot) * HARTREE_TO_EV,
        forces_ev_per_ang=forces,
        mulliken_charges_e=np.asarray(mulliken, float),
        dipole_e_ang=np.asarray(dipole_au, float) * BOHR_TO_ANGSTROM,
        n_scf_cycles=int(n_cycles),
        converged=True,
        stabilised=stabilised,
        wall_time_s=time.perf_counter() - start,
    )


class PySCFTerm:
    """The reference as a QM term of a QM/MM potential (:class:`mlmm.potentials.QMTerm`): PySCF in
    the Frame's weighted MM charges at ``level`` (the labels' energy and forces), for checks of the
    total QM/MM energy and reference dynamics on small systems."""

    def __init__(self, level: LevelSettings) -> None:
        self.level = check_level(level)

    def compute(self, frame: Atoms) -> dict[str, Any]:
        """``energy`` (eV) and ``forces`` (eV/Å, on QM atoms and MM sites) of :func:`qmmm_energy_forces`."""
        result = qmmm_energy_forces(frame, self.level)
        return {"energy": result.energy_ev, "forces": result.forces_ev_per_ang}
