"""Normal-mode sampling of the QM region (GFN2-xTB), re-embedded in environment snapshots.

The QM region is optimised and its Hessian taken by central differences of the forces, either
in vacuum or in its environment (xTB/MM potential of the full system with the MM atoms held
fixed). Translations and rotations are projected out of the mass-weighted Hessian; modes below
``min_wavenumber`` are dropped. Displacements along the modes:

* ``boltzmann``: classical harmonic Boltzmann distribution at T, Q_i ~ N(0, kT/ω_i²) (mass-
  weighted); the harmonic energy is Gamma(N_f/2, kT) distributed with mean N_f·kT/2.
* ``ani``: Smith, Isayev, Roitberg (Chem. Sci. 2017): c_i uniform with Σc_i ∈ [0, 1] and
  R_i = ±sqrt(3 c_i N_a kT / K_i), so the harmonic energy is (3 N_a kT / 2)·Σc_i.

Internal units: eV, Å, amu, ASE time; ω in 1/ASE-time (``units.fs``), wavenumbers in cm⁻¹.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.optimize import BFGS

from mlmm.frames import make_frame
from mlmm.potentials import qm_term
from mlmm.sampling.common import embed_qm, min_qm_distance, xtb_mm_potential
from mlmm.settings import EmbeddingSettings, NormalModesSettings
from mlmm.system import System

_log = logging.getLogger(__name__)

#: ω (1/ASE time) -> wavenumber (cm⁻¹)
OMEGA_TO_CM = units.second / (2.0 * np.pi * units._c * 100.0)


@dataclass
class Modes:
    """Harmonic analysis of the QM region at its minimum."""

    symbols: list[str]
    positions_ang: np.ndarray  #: (n, 3) minimum
    masses_amu: np.ndarray  #: (n,)
    omegas: np.ndarray  #: (N_f,) angular frequencies, 1/ASE time
    vectors: np.ndarray  #: (N_f, n, 3) orthonormal mass-weighted mode vectors
    energy_ev: float  #: energy at the minimum

    @property
    def wavenumbers_cm(self) -> np.ndarray:
        return self.omegas * OMEGA_TO_CM

    @property
    def force_constants(self) -> np.ndarray:
        """ω² in eV/(Å²·amu) (mass-weighted force constants)."""
        return self.omegas**2

    def cartesian(self, q_mw: np.ndarray) -> np.ndarray:
        """Cartesian displacements (…, n, 3) Å of mass-weighted mode amplitudes (…, N_f) Å·amu^½."""
        return np.einsum("...f,fnk->...nk", q_mw, self.vectors) / np.sqrt(self.masses_amu)[:, None]

    def harmonic_energy(self, q_mw: np.ndarray) -> np.ndarray:
        """½ Σ ω_i² Q_i² (eV) of mass-weighted amplitudes (…, N_f)."""
        return 0.5 * np.einsum("...f,f->...", q_mw**2, self.omegas**2)


def rigid_body_basis(positions_ang: np.ndarray, masses_amu: np.ndarray) -> np.ndarray:
    """Orthonormal mass-weighted translations and rotations, (k ≤ 6, 3n)."""
    sqm = np.sqrt(masses_amu)
    com = masses_amu @ positions_ang / masses_amu.sum()
    r = positions_ang - com
    vecs = []
    for k in range(3):
        t = np.zeros_like(r)
        t[:, k] = 1.0
        vecs.append((t * sqm[:, None]).ravel())
    for k in range(3):
        axis = np.zeros(3)
        axis[k] = 1.0
        vecs.append((np.cross(axis, r) * sqm[:, None]).ravel())
    q, s, _ = np.linalg.svd(np.array(vecs).T, full_matrices=False)
    return q[:, s > 1e-6 * s.max()].T


def harmonic_modes(hessian: np.ndarray, positions_ang: np.ndarray, masses_amu: np.ndarray, symbols: list[str],
                   energy_ev: float = 0.0, min_wavenumber: float = 50.0) -> Modes:
    """Vibrational modes of a Cartesian Hessian (3n, 3n) eV/Å² with rigid-body motion projected out."""
    n = len(masses_amu)
    inv = 1.0 / np.sqrt(np.repeat(masses_amu, 3))
    h_mw = 0.5 * (hessian + hessian.T) * inv[:, None] * inv[None, :]
    basis = rigid_body_basis(positions_ang, masses_amu)
    proj = np.eye(3 * n) - basis.T @ basis
    evals, evecs = np.linalg.eigh(proj @ h_mw @ proj)
    omega = np.sign(evals) * np.sqrt(np.abs(evals))
    keep = omega * OMEGA_TO_CM > min_wavenumber
    # drop the rigid-body null space (eigenvectors inside the projected-out basis)
    keep &= np.linalg.norm(basis @ evecs, axis=0) < 0.5
    return Modes(symbols, np.asarray(positions_ang, float), np.asarray(masses_amu, float), omega[keep],
                 evecs[:, keep].T.reshape(-1, n, 3), float(energy_ev))


def numerical_hessian(energy_forces: Callable[[np.ndarray], tuple[float, np.ndarray]], positions_ang: np.ndarray,
                      step_ang: float = 0.005) -> np.ndarray:
    """Hessian (3n, 3n) eV/Å² by central differences of the forces of ``energy_forces(pos)``."""
    pos = np.asarray(positions_ang, float)
    n3 = pos.size
    hess = np.zeros((n3, n3))
    for i in range(n3):
        d = np.zeros(n3)
        d[i] = step_ang
        _, fp = energy_forces(pos + d.reshape(pos.shape))
        _, fm = energy_forces(pos - d.reshape(pos.shape))
        hess[i] = -(fp - fm).ravel() / (2.0 * step_ang)
    return 0.5 * (hess + hess.T)


def qm_potential(system: System, environment: str, embedding: EmbeddingSettings) -> tuple[Callable[[np.ndarray], tuple[float, np.ndarray]], np.ndarray]:
    """(energy_forces(qm_pos) -> (eV, (n_qm,3) eV/Å), start QM positions) for the QM region in
    ``vacuum`` (GFN2-xTB alone) or ``embedded`` (xTB/MM of the full system, MM atoms fixed)."""
    n_qm = system.n_qm
    start = system.whole_qm_positions(system.atoms.positions)
    if environment == "vacuum" and system.links:
        raise ValueError(f"normal modes/wigner of {system.source}: environment 'vacuum' needs a QM region of whole "
                         f"molecules, but the QM selection cuts {system.n_link} covalent bond(s) (link atoms); "
                         "use environment: embedded (the QM atoms' modes in the fixed MM atoms)")
    if environment == "vacuum":
        frame = make_frame(system.atoms.get_chemical_symbols()[:n_qm], start, [], np.zeros((0, 3)), [],
                           mm_molecule=[], embedding=embedding, qm_charge=system.qm_charge, multiplicity=system.multiplicity, sampler="normal_modes",
                           iteration=0, source=system.source, seed=0)
        term = qm_term("xtb")

        def vacuum(qm_pos: np.ndarray) -> tuple[float, np.ndarray]:
            frame.positions = qm_pos
            out = term.compute(frame)
            return float(out["energy"]), np.asarray(out["forces"])

        return vacuum, start
    if environment == "embedded":
        atoms = system.atoms.copy()
        atoms.calc = xtb_mm_potential(system, embedding)
        full = atoms.positions.copy()
        full[:n_qm] = start  # whole QM region (the MM force field uses minimum images)

        def embedded(qm_pos: np.ndarray) -> tuple[float, np.ndarray]:
            p = full.copy()
            p[:n_qm] = qm_pos
            atoms.positions = p
            return float(atoms.get_potential_energy()), atoms.get_forces()[:n_qm].copy()

        return embedded, start
    raise ValueError(f"normal modes: environment must be 'vacuum' or 'embedded', got {environment!r}")


class _EnergyForcesCalculator(Calculator):
    """ASE calculator over ``energy_forces(positions)`` (for optimising the QM coordinates)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, energy_forces: Callable[[np.ndarray], tuple[float, np.ndarray]]) -> None:
        super().__init__()
        self.energy_forces = energy_forces

    def calculate(self, atoms=None, properties=None, system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        energy, forces = self.energy_forces(self.atoms.positions)
        self.results = {"energy": energy, "forces": forces}


def qm_modes(system: System, *, environment: str, embedding: EmbeddingSettings, fmax_ev_ang: float = 0.005,
             min_wavenumber: float = 50.0, log: logging.Logger | None = None) -> Modes:
    """Optimise the QM region (BFGS to ``fmax_ev_ang``) and return its harmonic modes (with the
    force field's masses, those of the MD)."""
    log = log or _log
    energy_forces, start = qm_potential(system, environment, embedding)
    qm = Atoms(system.atoms.get_chemical_symbols()[: system.n_qm], positions=start,
               masses=system.atoms.get_masses()[: system.n_qm])
    qm.calc = _EnergyForcesCalculator(energy_forces)
    opt = BFGS(qm, logfile=None)
    converged = opt.run(fmax=fmax_ev_ang, steps=500)
    if not converged:
        raise RuntimeError(f"normal modes: QM optimisation ({environment}) did not reach fmax {fmax_ev_ang} eV/Å")
    energy = float(qm.get_potential_energy())
    hess = numerical_hessian(energy_forces, qm.positions)
    modes = harmonic_modes(hess, qm.positions, qm.get_masses(), qm.get_chemical_symbols(), energy, min_wavenumber)
    log.info("normal modes (%s): %d BFGS steps, E_min %.4f eV, %d modes, wavenumbers %s cm^-1", environment,
             opt.nsteps, energy, len(modes.omegas), np.round(modes.wavenumbers_cm).astype(int).tolist())
    return modes


def draw_amplitudes(modes: Modes, n: int, temperature_K: float, rng: np.random.Generator, distribution: str = "boltzmann") -> np.ndarray:
    """Mass-weighted mode amplitudes (n, N_f) for ``boltzmann`` or ``ani`` (module docstring)."""
    kt = units.kB * temperature_K
    n_f = len(modes.omegas)
    if distribution == "boltzmann":
        return rng.standard_normal((n, n_f)) * np.sqrt(kt) / modes.omegas
    if distribution == "ani":
        n_atoms = len(modes.masses_amu)
        c = rng.random((n, n_f))
        c *= (rng.random((n, 1)) / c.sum(axis=1, keepdims=True))  # Σc uniform in [0, 1]
        sign = rng.choice([-1.0, 1.0], size=(n, n_f))
        return sign * np.sqrt(3.0 * c * n_atoms * kt) / modes.omegas
    raise ValueError(f"normal modes: distribution must be 'boltzmann' or 'ani', got {distribution!r}")


def displaced_frames(modes: Modes, references: list[Atoms], q_mw: np.ndarray, *, sampler: str, seed: int,
                     source: str, min_distance_ang: float, p_mw: np.ndarray | None = None) -> tuple[list[Atoms], list[int]]:
    """Frames of geometries minimum + Σ Q_i mode_i, each re-embedded in references[k % len] (round
    robin). Samples with an atom pair involving a QM atom closer than ``min_distance_ang`` are
    rejected. Returns (frames, indices of the accepted samples)."""
    disp = modes.cartesian(q_mw)
    momenta = None if p_mw is None else modes.cartesian(p_mw) * modes.masses_amu[:, None]
    frames, accepted = [], []
    for k in range(len(q_mw)):
        ref = references[len(frames) % len(references)]
        harmonic = float(modes.harmonic_energy(q_mw[k]))
        frame = embed_qm(ref, modes.positions_ang + disp[k], sampler=sampler, seed=seed,
                         source=f"{source}:sample{k}:env={ref.info.get('source', '')}",
                         qm_momenta=None if momenta is None else momenta[k], harmonic_energy_ev=harmonic)
        if min_qm_distance(frame) < min_distance_ang:
            continue
        frames.append(frame)
        accepted.append(k)
    return frames, accepted


def sample_normal_modes(system: System, references: list[Atoms], sampler: NormalModesSettings,
                        embedding: EmbeddingSettings, *, min_wavenumber: float = 50.0,
                        log: logging.Logger | None = None) -> tuple[list[Atoms], dict]:
    """``sampler.n_frames`` normal-mode-displaced Frames (module docstring; ``sampler``: temperature
    K, min_distance Å) and stats (harmonic and xTB energies above the minimum, wavenumbers)."""
    log = log or _log
    n_frames, temperature_K, seed = sampler.n_frames, sampler.temperature, sampler.seed
    environment, distribution, min_distance_ang = sampler.environment, sampler.distribution, sampler.min_distance
    if not references:
        raise ValueError("normal modes: need at least one environment snapshot (reference Frame)")
    modes = qm_modes(system, environment=environment, embedding=embedding, min_wavenumber=min_wavenumber, log=log)
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = []
    harmonic: list[float] = []
    for _ in range(50):
        q = draw_amplitudes(modes, n_frames, temperature_K, rng, distribution)
        new, acc = displaced_frames(modes, references, q, sampler="normal_modes", seed=seed, source=system.source,
                                    min_distance_ang=min_distance_ang)
        frames += new
        harmonic += modes.harmonic_energy(q[acc]).tolist()
        if len(frames) >= n_frames:
            break
    else:
        raise RuntimeError(f"normal modes: fewer than {n_frames} samples pass min_distance {min_distance_ang} Å")
    frames, harmonic = frames[:n_frames], harmonic[:n_frames]
    n_f = len(modes.omegas)
    kt = units.kB * temperature_K
    log.info("normal modes: %d frames, mean harmonic energy %.3f eV (Boltzmann expectation N_f kT/2 = %.3f eV)",
             len(frames), float(np.mean(harmonic)), 0.5 * n_f * kt)
    stats = {"environment": environment, "distribution": distribution, "n_modes": n_f,
             "wavenumbers_cm": modes.wavenumbers_cm, "minimum_energy_ev": modes.energy_ev,
             "harmonic_energy_ev": harmonic, "expected_mean_harmonic_ev": 0.5 * n_f * kt if distribution == "boltzmann"
             else 0.75 * len(modes.masses_amu) * kt}
    return frames, stats
