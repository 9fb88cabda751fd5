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


def sample_wigner(system: System, references: list[Atoms], *, n_frames: int, temperature_K: float, environment: str,
                  cutoff_ang: float, seed: int, min_distance_ang: float = 0.7, min_wavenumber: float = 50.0,
                  log: logging.Logger | None = None) -> tuple[list[Atoms], dict]:
    """``n_frames`` Wigner Frames of the QM region (see module docstring) and stats."""
    log = log or _log
    if not references:
        raise ValueError("wigner: need at least one environment snapshot (reference Frame)")
    modes = qm_modes(system, environment=environment, cutoff_ang=cutoff_ang, min_wavenumber=min_wavenumber, log=log)
    frames, q, p = sample_wigner_modes(modes, references, n_frames=n_frames, temperature_K=temperature_K, seed=seed,
                                       source=system.source, min_distance_ang=min_distance_ang)
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
