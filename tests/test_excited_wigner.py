"""Wigner start states of the excited-state dynamics: butadiene + its nearest waters (xTB/MM).

The QM region's positions and momenta must follow the harmonic Wigner distribution of the
embedded GFN2-xTB modes (recovered from the full-system start states by undoing the alignment),
every replica must start differently, and the MM momenta must be thermal; the MD started from
them respects the rigid waters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import units

from mlmm.excited.stages import initial_states
from mlmm.sampling.common import kabsch
from mlmm.sampling.normal_modes import qm_modes
from mlmm.sampling.wigner import wigner_initial_conditions, wigner_variances
from conftest import embedding_with, rigid_waters, solute_with_nearest_waters
from mlmm.dynamics.md import run_md
from mlmm.sampling.common import xtb_mm_potential
from mlmm.system import System

BOX = Path(__file__).resolve().parents[1] / "data" / "chromophore" / "butadiene_water.pdb"
N_STARTS = 400


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> System:
    """Butadiene + its 8 nearest waters, non-periodic."""
    return solute_with_nearest_waters(BOX, "BUT", 8, tmp_path_factory.mktemp("wigner") / "but_small.pdb")


@pytest.fixture(scope="module")
def modes(system):
    return qm_modes(system, environment="embedded", embedding=embedding_with(cutoff=6.0))


@pytest.fixture(scope="module")
def starts(system, modes):
    return wigner_initial_conditions(system, modes, n=N_STARTS, temperature_K=300.0, seed=5)


def recovered_amplitudes(system, modes, atoms):
    """Mass-weighted (Q, P) of a start state: its QM atoms aligned back onto the modes' minimum."""
    n_qm, m = system.n_qm, modes.masses_amu
    x = atoms.positions[:n_qm]
    rot, cm, ct = kabsch(x, modes.positions_ang, m)
    dx = (x - cm) @ rot.T + ct - modes.positions_ang
    p = atoms.get_momenta()[:n_qm] @ rot.T
    vec = modes.vectors.reshape(len(modes.omegas), -1)
    q_rec = vec @ (dx * np.sqrt(m)[:, None]).ravel()
    p_rec = vec @ (p / np.sqrt(m)[:, None]).ravel()
    return q_rec, p_rec


def test_butadiene_modes_in_water(modes):
    """24 vibrations; C=C stretches near 1650 cm⁻¹, C–H stretches near 3100 cm⁻¹ (GFN2)."""
    wn = modes.wavenumbers_cm
    assert len(wn) == 24
    assert 100 < wn.min() < 300 and 2950 < wn.max() < 3250
    assert ((wn > 1550) & (wn < 1800)).sum() == 2


def test_wigner_starts_follow_the_wigner_distribution(system, modes, starts):
    """Recovered mode amplitudes and momenta: equal to the drawn ones, per-mode variances
    ħ/2ω·coth and ħω/2·coth (300 K) within sampling error, positions and momenta uncorrelated."""
    atoms, q, p = starts
    rec = np.array([np.concatenate(recovered_amplitudes(system, modes, a)) for a in atoms])
    n_f = len(modes.omegas)
    q_rec, p_rec = rec[:, :n_f], rec[:, n_f:]
    var_q, var_p = wigner_variances(modes.omegas, 300.0)
    scale_q, scale_p = np.sqrt(var_q), np.sqrt(var_p)
    # the alignment removes only rigid-body motion, which the modes have none of (up to 2nd order)
    assert np.abs((q_rec - q) / scale_q).max() < 0.05
    assert np.abs((p_rec - p) / scale_p).max() < 0.05
    ratio_q, ratio_p = q_rec.var(axis=0) / var_q, p_rec.var(axis=0) / var_p
    se = np.sqrt(2.0 / N_STARTS)  # relative standard error of one variance estimate
    assert np.abs(ratio_q - 1).max() < 5 * se and np.abs(ratio_p - 1).max() < 5 * se
    assert abs(ratio_q.mean() - 1) < 5 * se / np.sqrt(n_f) and abs(ratio_p.mean() - 1) < 5 * se / np.sqrt(n_f)
    corr = (q_rec * p_rec).mean(axis=0) / np.sqrt(var_q * var_p)
    assert np.abs(corr).max() < 5 / np.sqrt(N_STARTS)
    # QM kinetic energy: mean Σ ħω/4·coth (half the Wigner vibrational energy)
    ekin = np.array([a.get_kinetic_energy() - 0.5 * np.sum(a.get_momenta()[system.n_qm:] ** 2 /
                     a.get_masses()[system.n_qm:, None]) for a in atoms])
    assert ekin.mean() == pytest.approx(0.5 * np.sum(var_p), rel=0.1)


def test_every_replica_starts_differently_and_the_mm_part_is_thermal(system, starts):
    atoms, _, _ = starts
    n_qm = system.n_qm
    pos = np.array([a.positions[:n_qm] for a in atoms[:10]])
    mom = np.array([a.get_momenta() for a in atoms[:10]])
    for i in range(10):
        for j in range(i):
            assert np.abs(pos[i] - pos[j]).max() > 1e-3 and np.abs(mom[i] - mom[j]).max() > 1e-3
    # MM sites stay where the structure has them
    for a in atoms[:10]:
        np.testing.assert_allclose(a.positions[n_qm:], system.atoms.positions[n_qm:])
    # MM momenta Maxwell–Boltzmann: 9 degrees of freedom per water (the MD applies the constraints)
    masses = system.atoms.get_masses()
    ekin_mm = [0.5 * np.sum(a.get_momenta()[n_qm:] ** 2 / masses[n_qm:, None]) for a in atoms]
    n_w = (len(system.atoms) - n_qm) // 3
    expected = 0.5 * (9 * n_w - 3) * units.kB * 300.0  # minus the removed centre-of-mass motion
    assert np.mean(ekin_mm) == pytest.approx(expected, rel=0.05)
    # the MD started from one: positions and momenta kept, no velocity along O–H or H–H of a rigid water
    run = run_md(xtb_mm_potential(system, embedding_with(cutoff=6.0)), steps=0, timestep_fs=0.5, temperature_K=300.0, friction_per_fs=0.01,
                 seed=1, start=atoms[0])
    np.testing.assert_allclose(run.final_state.positions, atoms[0].positions, atol=2e-3)  # waters snapped rigid
    v = run.final_state.get_momenta() / masses[:, None]
    v0 = atoms[0].get_momenta() / masses[:, None]
    np.testing.assert_allclose(v[:n_qm], v0[:n_qm], atol=1e-9)  # the QM region has no constraints
    waters, _ = rigid_waters(system)
    for o, h1, h2 in waters:
        for i, j in ((o, h1), (o, h2), (h1, h2)):
            r = run.final_state.positions[i] - run.final_state.positions[j]
            assert abs(np.dot(v[i] - v[j], r)) < 1e-6 * np.linalg.norm(v0[i] - v0[j]) * np.linalg.norm(r) + 1e-9
    assert np.abs(v - v0)[n_qm:].max() > 1e-4  # … which the start's momenta were not


def test_initial_states_choices(system):
    starts, record = initial_states(system, "ground_state", n=3, temperature_K=300.0, seed=1, environment="embedded",
                                    embedding=embedding_with(cutoff=6.0))
    assert starts == [None, None, None] and record == {"initial": "ground_state"}
    with pytest.raises(ValueError, match="initial must be"):
        initial_states(system, "boltzmann", n=1, temperature_K=300.0, seed=1, environment="embedded", embedding=embedding_with(cutoff=6.0))
    starts, record = initial_states(system, "wigner", n=2, temperature_K=300.0, seed=1, environment="vacuum",
                                    embedding=embedding_with(cutoff=6.0))
    assert len(starts) == 2 and record["initial"] == "wigner" and record["n_modes"] == 24
    assert len(record["harmonic_energy_ev"]) == 2
