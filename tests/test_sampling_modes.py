"""Normal-mode and Wigner sampling: analytic harmonic-oscillator statistics and valid Frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import units

from mlmm.frames import qm_mask, read_frames, validate_frame, write_frames
from mlmm.sampling.normal_modes import draw_amplitudes, harmonic_modes, qm_modes, qm_potential, sample_normal_modes
from mlmm.sampling.wigner import HBAR, draw_wigner, sample_wigner_modes, wigner_variances
from conftest import embedding_with, sampler_with, solute_with_nearest_waters
from mlmm.system import System

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "ethanol_water.pdb"


def small_system(tmp_path: Path, n_waters: int = 10) -> System:
    """Ethanol + its nearest waters from the demo box, non-periodic."""
    return solute_with_nearest_waters(DEMO, "ETH", n_waters, tmp_path / "eth_small.pdb")


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> System:
    return small_system(tmp_path_factory.mktemp("modes"))


@pytest.fixture(scope="module")
def modes(system):
    return qm_modes(system, environment="vacuum", embedding=embedding_with(cutoff=6.0))


def diatomic_modes(k_ev_ang2: float, masses: tuple[float, float]):
    """Harmonic diatomic along x: analytic Hessian k [[1,-1],[-1,1]] on the x components."""
    hess = np.zeros((6, 6))
    hess[np.ix_([0, 3], [0, 3])] = k_ev_ang2 * np.array([[1.0, -1.0], [-1.0, 1.0]])
    pos = np.array([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0]])
    return harmonic_modes(hess, pos, np.array(masses), ["C", "O"], min_wavenumber=10.0)


@pytest.mark.parametrize("temperature", [100.0, 1000.0])
def test_wigner_reproduces_harmonic_oscillator_variances(temperature):
    """Bond-length and momentum variances of a C–O-like oscillator (ħω ≈ 0.055 eV) match
    ħ/(2μω)·coth(ħω/2kT) and μħω/2·coth(ħω/2kT); coth ≈ 1.003 at 100 K (ground state) and 3.2 at 1000 K."""
    k, masses = 5.0, (12.0, 16.0)
    modes = diatomic_modes(k, masses)
    mu = masses[0] * masses[1] / sum(masses)
    omega = np.sqrt(k / mu)
    assert len(modes.omegas) == 1 and modes.omegas[0] == pytest.approx(omega, rel=1e-9)
    n = 40000
    q, p = draw_wigner(modes.omegas, n, temperature, np.random.default_rng(7))
    disp = modes.cartesian(q)
    mom = modes.cartesian(p) * modes.masses_amu[:, None]
    bond = disp[:, 1, 0] - disp[:, 0, 0]
    p_rel = (masses[0] * mom[:, 1, 0] - masses[1] * mom[:, 0, 0]) / sum(masses)  # conjugate to the bond length
    coth = 1.0 / np.tanh(HBAR * omega / (2.0 * units.kB * temperature))
    var_x = HBAR / (2.0 * mu * omega) * coth
    var_p = mu * HBAR * omega / 2.0 * coth
    tol = 5.0 * np.sqrt(2.0 / n)  # 5 standard errors of a variance estimate
    assert bond.var() == pytest.approx(var_x, rel=tol)
    assert p_rel.var() == pytest.approx(var_p, rel=tol)
    assert np.allclose(mom.sum(axis=1), 0.0, atol=1e-9)  # no centre-of-mass motion
    assert abs(np.mean(bond * p_rel)) < 5.0 * np.sqrt(var_x * var_p / n)  # x and p uncorrelated


def test_wigner_limits():
    omegas = np.array([0.1, 0.5, 1.0])
    vq0, vp0 = wigner_variances(omegas, 0.0)
    assert np.allclose(vq0, HBAR / (2 * omegas)) and np.allclose(vp0, HBAR * omegas / 2)  # ground state
    vq, vp = wigner_variances(omegas, 1e6)
    kt = units.kB * 1e6
    assert np.allclose(vq, kt / omegas**2, rtol=1e-3) and np.allclose(vp, kt, rtol=1e-3)  # classical


def test_ethanol_modes(modes):
    """21 vibrations; the O–H stretch is the highest (GFN2 ≈ 3500–3700 cm⁻¹)."""
    assert len(modes.omegas) == 21
    wn = modes.wavenumbers_cm
    assert 150 < wn.min() < 400 and 3300 < wn.max() < 3800
    vec = modes.vectors.reshape(21, -1)
    assert np.allclose(vec @ vec.T, np.eye(21), atol=1e-8)


@pytest.mark.parametrize("temperature", [100.0, 300.0])
def test_normal_mode_energies_follow_temperature(modes, system, temperature):
    """Boltzmann amplitudes: mean harmonic energy N_f·kT/2 and variance N_f·(kT)²/2 (Gamma(N_f/2, kT))."""
    rng = np.random.default_rng(3)
    kt = units.kB * temperature
    n_f = len(modes.omegas)
    e = modes.harmonic_energy(draw_amplitudes(modes, 4000, temperature, rng))
    sem = np.sqrt(n_f / 2.0) * kt / np.sqrt(len(e))
    assert abs(e.mean() - 0.5 * n_f * kt) < 5 * sem
    assert e.var() == pytest.approx(0.5 * n_f * kt**2, rel=0.15)


def test_normal_mode_displacements_probe_the_real_surface(modes, system):
    """The GFN2 energy above the minimum of the displaced structures tracks the harmonic energy:
    within 15 % on average at 50 K; at 300 K the rectilinear torsion displacements make it larger
    (anharmonic, measured ≈ +30 %), but never smaller on average."""
    energy_forces, _ = qm_potential(system, "vacuum", embedding_with(cutoff=6.0))
    e_min = energy_forces(modes.positions_ang)[0]
    rng = np.random.default_rng(4)
    ratios = {}
    for t in (50.0, 300.0):
        q = draw_amplitudes(modes, 40, t, rng)
        e_xtb = np.array([energy_forces(modes.positions_ang + d)[0] for d in modes.cartesian(q)]) - e_min
        e_harm = modes.harmonic_energy(q)
        assert np.corrcoef(e_xtb, e_harm)[0, 1] > 0.6
        ratios[t] = e_xtb.mean() / e_harm.mean()
    assert ratios[50.0] == pytest.approx(1.0, abs=0.15)
    assert 1.0 < ratios[300.0] < 1.6 and ratios[300.0] > ratios[50.0]


def test_ani_distribution_bounds(modes):
    t = 300.0
    kt = units.kB * t
    n_atoms = len(modes.masses_amu)
    e = modes.harmonic_energy(draw_amplitudes(modes, 4000, t, np.random.default_rng(1), "ani"))
    assert e.max() <= 1.5 * n_atoms * kt * (1 + 1e-9)
    assert e.mean() == pytest.approx(0.75 * n_atoms * kt, rel=0.05)


def test_frames_are_reembedded(system, tmp_path):
    refs = [system.cut_frame(system.atoms.positions, embedding_with(cutoff=6.0), sampler="xtb_md", iteration=0, source=f"ref{i}", seed=0)[0]
            for i in range(2)]
    refs[1].positions[9:] += 0.1  # a second, different environment
    sampler = sampler_with("normal_modes", n_frames=4, temperature=300.0, environment="vacuum", distribution="boltzmann",
                           seed=2)
    frames, stats = sample_normal_modes(system, refs, sampler, embedding_with(cutoff=6.0))
    assert len(frames) == 4 and len(stats["harmonic_energy_ev"]) == 4
    for k, f in enumerate(frames):
        validate_frame(f)
        ref = refs[k % 2]
        assert f.info["sampler"] == "normal_modes" and f.info["source"].endswith(f"env={ref.info['source']}")
        assert np.array_equal(f.positions[~qm_mask(f)], ref.positions[~qm_mask(ref)])
        # aligned onto the reference QM atoms: displacements are small
        assert np.sqrt(((f.positions[:9] - ref.positions[:9]) ** 2).sum(1).mean()) < 0.3
    modes = qm_modes(system, environment="embedded", embedding=embedding_with(cutoff=6.0))
    wframes, q, p = sample_wigner_modes(modes, refs, n_frames=3, temperature_K=0.0, seed=1, source="t")
    write_frames(tmp_path / "w.extxyz", wframes)
    back = read_frames(tmp_path / "w.extxyz")
    for f, qk, pk in zip(back, q, p):
        mom = f.get_momenta()
        assert np.allclose(mom[9:], 0.0) and np.abs(mom[:9]).max() > 0
        ke = (mom[:9] ** 2 / modes.masses_amu[:, None]).sum() / 2  # the force field's masses
        assert ke == pytest.approx(0.5 * (pk**2).sum(), rel=1e-6)  # rotation keeps the kinetic energy


def test_wigner_sampler_settings_and_stats(system):
    """The Wigner sampler driven by its settings: the requested frames, each QM kinetic energy
    (from the Frame's momenta and the force field's masses) equal to the one in the stats, and the
    expected mean equal to Σ ħω/4·coth(ħω/2kT) of its modes (analytic harmonic Wigner value)."""
    from mlmm.sampling.wigner import sample_wigner

    refs = [system.cut_frame(system.atoms.positions, embedding_with(cutoff=6.0), sampler="xtb_md", iteration=0,
                             source="ref", seed=0)[0]]
    sampler = sampler_with("wigner", n_frames=3, temperature=300.0, environment="vacuum", seed=4, min_distance=0.7)
    frames, stats = sample_wigner(system, refs, sampler, embedding_with(cutoff=6.0))
    assert len(frames) == 3 and all(f.info["sampler"] == "wigner" and f.info["seed"] == 4 for f in frames)
    masses = system.atoms.get_masses()[:9]
    kinetic = [0.5 * float((f.get_momenta()[:9] ** 2 / masses[:, None]).sum()) for f in frames]
    np.testing.assert_allclose(kinetic, stats["kinetic_energy_ev"], rtol=1e-6)
    from scipy import constants

    hbar_omega = constants.h * constants.c * 100.0 / constants.e * np.asarray(stats["wavenumbers_cm"])  # eV
    kt = constants.k * 300.0 / constants.e
    expected = float(np.sum(hbar_omega / 4.0 / np.tanh(hbar_omega / (2.0 * kt))))
    assert stats["expected_mean_harmonic_ev"] == pytest.approx(expected, rel=1e-3)
