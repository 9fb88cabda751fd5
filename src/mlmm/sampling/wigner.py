"""Wigner sampling: positions and momenta from the harmonic Wigner distribution at T.

For a harmonic mode of angular frequency ω (mass-weighted coordinate Q, momentum P) the
Wigner function at temperature T is a Gaussian with

    ⟨Q²⟩ = ħ/(2ω) · coth(ħω / 2kT),    ⟨P²⟩ = ħω/2 · coth(ħω / 2kT),

which is the ground vibrational state (coth → 1) for T → 0 and the classical Boltzmann
distribution (⟨Q²⟩ → kT/ω²) for kT ≫ ħω. Modes come from :mod:`mlmm.sampling.normal_modes`
(GFN2-xTB minimum of the QM region, vacuum or embedded); each sample is re-embedded in an
environment snapshot, and the momenta (ASE units, amu·Å/ASE-time) of the QM atoms are stored
with the Frame (``momenta`` array, zero on MM sites). Used for absorption spectra (nuclear
ensemble) and initial conditions of excited-state dynamics.
"""

from __future__ import annotations

import logging

import numpy as np
from ase import Atoms, units

from mlmm.sampling.normal_modes import Modes, displaced_frames, qm_modes
from mlmm.settings import EmbeddingSettings, WignerSettings
from mlmm.system import System

_log = logging.getLogger(__name__)

#: ħ in ASE units (eV · ASE time)
HBAR = units._hbar * units.J * units.second


def wigner_variances(omegas: np.ndarray, temperature_K: float) -> tuple[np.ndarray, np.ndarray]:
    """(⟨Q²⟩ Å²·amu, ⟨P²⟩ amu·eV) of mass-weighted harmonic modes at T (T = 0: ground state)."""
    omegas = np.asarray(omegas, float)
    if temperature_K <= 0:
        coth = np.ones_like(omegas)
    else:
        x = HBAR * omegas / (2.0 * units.kB * temperature_K)
        coth = 1.0 / np.tanh(x)
    return HBAR / (2.0 * omegas) * coth, HBAR * omegas / 2.0 * coth


def draw_wigner(omegas: np.ndarray, n: int, temperature_K: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mass-weighted amplitudes and momenta (n, N_f) from the harmonic Wigner distribution."""
    var_q, var_p = wigner_variances(omegas, temperature_K)
    n_f = len(var_q)
    return rng.standard_normal((n, n_f)) * np.sqrt(var_q), rng.standard_normal((n, n_f)) * np.sqrt(var_p)


def sample_wigner_modes(modes: Modes, references: list[Atoms], *, n_frames: int, temperature_K: float, seed: int,
                        source: str, min_distance_ang: float = 0.7) -> tuple[list[Atoms], np.ndarray, np.ndarray]:
    """Frames with Wigner positions and momenta; also the accepted (Q, P) amplitudes."""
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = []
    qs, ps = [], []
    for _ in range(50):
        q, p = draw_wigner(modes.omegas, n_frames, temperature_K, rng)
        new, acc = displaced_frames(modes, references, q, sampler="wigner", seed=seed, source=source,
                                    min_distance_ang=min_distance_ang, p_mw=p)
        frames += new
        qs.append(q[acc])
        ps.append(p[acc])
        if len(frames) >= n_frames:
            break
    else:
        raise RuntimeError(f"wigner: fewer than {n_frames} samples pass min_distance {min_distance_ang} Å")
    return frames[:n_frames], np.concatenate(qs)[:n_frames], np.concatenate(ps)[:n_frames]


def sample_wigner(system: System, references: list[Atoms], sampler: WignerSettings, embedding: EmbeddingSettings, *,
                  min_wavenumber: float = 50.0, log: logging.Logger | None = None) -> tuple[list[Atoms], dict]:
    """``sampler.n_frames`` Wigner Frames of the QM region (see module docstring; ``sampler``:
    temperature K, min_distance Å) and stats."""
    log = log or _log
    temperature_K, environment = sampler.temperature, sampler.environment
    if not references:
        raise ValueError("wigner: need at least one environment snapshot (reference Frame)")
    modes = qm_modes(system, environment=environment, embedding=embedding, min_wavenumber=min_wavenumber, log=log)
    frames, q, p = sample_wigner_modes(modes, references, n_frames=sampler.n_frames, temperature_K=temperature_K,
                                       seed=sampler.seed, source=system.source, min_distance_ang=sampler.min_distance)
    var_q, var_p = wigner_variances(modes.omegas, temperature_K)
    potential = modes.harmonic_energy(q)
    kinetic = 0.5 * (p**2).sum(axis=1)
    expected = 0.5 * float(np.sum(modes.omegas**2 * var_q))  # = ⟨kinetic⟩ = Σ ħω/4 coth
    log.info("wigner: %d frames at %.0f K; mean harmonic potential %.3f eV, kinetic %.3f eV (expected %.3f eV each; "
             "zero-point energy %.3f eV)", len(frames), temperature_K, potential.mean(), kinetic.mean(), expected,
             0.5 * HBAR * float(modes.omegas.sum()))
    stats = {"environment": environment, "n_modes": len(modes.omegas), "wavenumbers_cm": modes.wavenumbers_cm,
             "minimum_energy_ev": modes.energy_ev, "harmonic_energy_ev": potential, "kinetic_energy_ev": kinetic,
             "expected_mean_harmonic_ev": expected, "zero_point_energy_ev": 0.5 * HBAR * float(modes.omegas.sum())}
    return frames, stats


def wigner_initial_conditions(system: System, modes: Modes, *, n: int, temperature_K: float, seed: int,
                              min_distance_ang: float = 0.7) -> tuple[list[Atoms], np.ndarray, np.ndarray]:
    """``n`` full-system MD start states (positions and momenta) with a Wigner-sampled QM region.

    The QM region is set to modes' minimum + a Wigner displacement (harmonic Wigner distribution
    at ``temperature_K``, positions and momenta), rigidly aligned (mass-weighted Kabsch) onto the
    system's QM atoms, momenta rotated with it; the MM sites keep the system's positions and get
    Maxwell–Boltzmann momenta at ``temperature_K`` (MM centre-of-mass momentum removed; the MD
    applies the rigid-water constraints). Draws with an atom pair involving a QM atom closer than
    ``min_distance_ang`` (minimum image) are redrawn. Returns (start Atoms, accepted mass-weighted
    amplitudes Q (n, N_f) Å·amu^½, momenta P (n, N_f)); momenta in ASE units (amu·Å/ASE time).
    Used by the excited-state dynamics and the bright-state AL walkers (vertical excitation from
    the ground-state Wigner distribution).
    """
    from ase.geometry import get_distances

    from mlmm.sampling.common import kabsch

    rng = np.random.default_rng(seed)
    n_qm = system.n_qm
    target = system.whole_qm_positions(system.atoms.positions)
    masses = system.atoms.get_masses()
    if not np.allclose(masses[:n_qm], modes.masses_amu):
        raise ValueError("wigner: the modes' masses do not match the system's QM atoms")
    kt = units.kB * temperature_K
    starts: list[Atoms] = []
    qs, ps = [], []
    for _ in range(50 * n):
        q, p = draw_wigner(modes.omegas, 1, temperature_K, rng)
        qm = modes.positions_ang + modes.cartesian(q)[0]
        rot, cm, ct = kabsch(qm, target, masses[:n_qm])
        atoms = system.atoms.copy()
        atoms.calc = None
        pos = atoms.get_positions()
        pos[:n_qm] = (qm - cm) @ rot.T + ct
        _, d = get_distances(pos[:n_qm], pos, cell=atoms.cell, pbc=atoms.pbc)
        d[np.arange(n_qm), np.arange(n_qm)] = np.inf
        if d.min() < min_distance_ang:
            continue
        atoms.set_positions(pos, apply_constraint=False)
        mom = np.sqrt(masses * kt)[:, None] * rng.standard_normal((len(atoms), 3))
        if len(atoms) > n_qm:
            mom[n_qm:] -= masses[n_qm:, None] * mom[n_qm:].sum(axis=0) / masses[n_qm:].sum()
        mom[:n_qm] = (modes.cartesian(p)[0] * modes.masses_amu[:, None]) @ rot.T
        atoms.set_momenta(mom)  # the MD applies the rigid-water constraints to them
        starts.append(atoms)
        qs.append(q[0])
        ps.append(p[0])
        if len(starts) == n:
            return starts, np.array(qs), np.array(ps)
    raise RuntimeError(f"wigner: fewer than {n} start states pass min_distance {min_distance_ang} Å")


def wigner_starts(system: System, *, n: int, temperature_K: float, seed: int, environment: str, embedding: EmbeddingSettings,
                  log: logging.Logger | None = None) -> tuple[list[Atoms], dict]:
    """GFN2-xTB modes of the QM region (``environment``: 'embedded' = in the fixed MM field, or
    'vacuum') and ``n`` Wigner start states (:func:`wigner_initial_conditions`); also stats
    (harmonic potential and QM kinetic energy per start, eV, and their expected mean)."""
    log = log or _log
    modes = qm_modes(system, environment=environment, embedding=embedding, log=log)
    starts, q, p = wigner_initial_conditions(system, modes, n=n, temperature_K=temperature_K, seed=seed)
    var_q, _ = wigner_variances(modes.omegas, temperature_K)
    stats = {"initial": "wigner", "environment": environment, "temperature_K": temperature_K,
             "n_modes": len(modes.omegas), "harmonic_energy_ev": modes.harmonic_energy(q).tolist(),
             "kinetic_energy_ev": (0.5 * (p**2).sum(axis=1)).tolist(),
             "expected_mean_harmonic_ev": 0.5 * float(np.sum(modes.omegas**2 * var_q))}
    log.info("wigner starts (%s, %.0f K): harmonic %s eV, QM kinetic %s eV (expected mean %.3f eV each)", environment,
             temperature_K, np.round(stats["harmonic_energy_ev"], 3).tolist(),
             np.round(stats["kinetic_energy_ev"], 3).tolist(), stats["expected_mean_harmonic_ev"])
    return starts, stats
