"""Production helpers: energy drift fit and DCD trajectories MDAnalysis reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlmm.dynamics.stages import energy_drift

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "ethanol_water.pdb"


def test_energy_drift_recovers_a_known_slope() -> None:
    t_fs = np.arange(0, 2001, 10.0)
    rng = np.random.default_rng(0)
    e = -100.0 + 0.03 * t_fs / 1000.0 + 1e-3 * rng.standard_normal(len(t_fs))  # 0.03 eV/ps
    d = energy_drift(t_fs, e, n_atoms=300)
    assert d["drift_eV_per_ps"] == pytest.approx(0.03, abs=2e-3)
    assert d["drift_eV_per_atom_per_ps"] == pytest.approx(1e-4, abs=7e-6)
    assert d["rms_fluctuation_eV"] == pytest.approx(1e-3, rel=0.3)
    assert d["length_ps"] == pytest.approx(2.0)


def test_dcd_round_trip_in_input_order(tmp_path: Path) -> None:
    import MDAnalysis as mda
    from ase.io import read

    from conftest import load_demo
    from mlmm.dynamics.trajectory import DCDTrajectory, write_topology

    atoms = read(DEMO)
    system = load_demo()
    dcd = DCDTrajectory(tmp_path / "t.dcd", system, interval_fs=5.0)
    for k in range(3):
        dcd.write(system.atoms.positions + 0.1 * k)
    assert not (tmp_path / "t.dcd").exists()  # written in place only when complete
    dcd.close()
    write_topology(system, str(tmp_path / "top.pdb"))
    u = mda.Universe(str(tmp_path / "top.pdb"), str(tmp_path / "t.dcd"))
    assert u.trajectory.n_frames == 3
    assert u.trajectory.dt == pytest.approx(0.005)
    for k, ts in enumerate(u.trajectory):
        np.testing.assert_allclose(u.atoms.positions, atoms.positions + 0.1 * k, atol=1e-4)
        np.testing.assert_allclose(ts.dimensions[:3], atoms.cell.lengths(), atol=1e-4)
    assert list(u.atoms.names[:3]) == ["C1", "C2", "O1"]


def test_rdf_first_minimum_is_local() -> None:
    from mlmm.analysis.production import first_minimum_after

    r = np.linspace(0.05, 8.0, 80)
    g = 1.0 + 1.5 * np.exp(-((r - 2.8) ** 2) / 0.05) - 0.6 * np.exp(-((r - 3.4) ** 2) / 0.1) - 0.8 * np.exp(-((r - 7.5) ** 2) / 0.05)
    peak = int(np.argmax(g))
    assert abs(r[first_minimum_after(g, peak)] - 3.4) < 0.15  # not the deeper minimum at 7.5 Å


HILLS = """#! FIELDS time d1 sigma_d1 height biasf
#! SET multivariate false
#! SET kerneltype stretched-gaussian
 0.1 0.30 0.02 1.2 10
 0.2 0.32 0.02 1.0 10
 0.3 0.35 0.02 0.8 10
 0.4 0.31 0.02 0.7 10
"""


def test_sum_hills_profile_is_minus_the_deposited_bias(tmp_path: Path) -> None:
    """PLUMED's sum_hills on a shared grid gives F(s) = -Σ hills (heights in HILLS are already
    rescaled by γ/(γ-1) in well-tempered runs), minimum shifted to 0."""
    from mlmm.dynamics.metadynamics import hills_cv_range, replica_fes

    (tmp_path / "HILLS").write_text(HILLS)
    lo, hi, periodic = hills_cv_range([tmp_path / "HILLS"])
    assert not periodic and lo == pytest.approx(0.24) and hi == pytest.approx(0.41)
    grid, fes = replica_fes(tmp_path / "HILLS", tmp_path / "fes.dat", lo, hi, 50)
    h = np.loadtxt(tmp_path / "HILLS")
    bias = (h[:, 3] * np.exp(-((grid[:, None] - h[:, 1]) ** 2) / (2 * h[:, 2] ** 2))).sum(axis=1)
    expected = -bias - (-bias).min()
    np.testing.assert_allclose(fes, expected, atol=0.01)  # kJ/mol


def test_combined_profile_mean_and_standard_error() -> None:
    from mlmm.dynamics.metadynamics import combine_fes

    a = np.array([3.0, 1.0, 0.0, 2.0])
    b = np.array([5.0, 2.0, 1.0, 4.0])  # minus its minimum: [4, 1, 0, 3]
    mean, err = combine_fes([a, b])
    np.testing.assert_allclose(mean, [3.5, 1.0, 0.0, 2.5])
    np.testing.assert_allclose(err, [0.5, 0.0, 0.0, 0.5])
    mean1, err1 = combine_fes([a])
    np.testing.assert_allclose(mean1, a)
    np.testing.assert_allclose(err1, 0.0)


def test_first_shell_peak_is_the_first_maximum_above_bulk() -> None:
    from mlmm.analysis.production import first_shell_peak

    r = np.linspace(0.05, 8.0, 80)
    # a hydration peak at 2.8 Å (g = 1.6), then a dip, then a higher long-range maximum at 7.5 Å
    g = np.clip(1.6 * np.exp(-((r - 2.8) ** 2) / 0.05) + np.where(r > 3.2, 0.8 + 0.12 * (r - 3.2), 0.0), 0, None)
    g[r > 7.4] = 1.4
    assert abs(r[first_shell_peak(g)] - 2.8) < 0.1
    assert first_shell_peak(np.array([0.0, 0.2, 0.5, 0.8, 0.9])) == 4  # never above 1: global maximum


def test_trajectory_of_a_structure_without_element_column(tmp_path: Path) -> None:
    """A PDB without element column (as many tools write it): OpenMM takes the elements from the
    atom names, the topology written next to the trajectory carries them, and the analysis reads
    the DCD (mlmm order written back in file order) with it."""
    import MDAnalysis as mda

    from conftest import FORCE_FIELDS
    from mlmm.analysis.production import replica_universe, solvent_rdf
    from mlmm.dynamics.trajectory import DCDTrajectory, write_topology
    from mlmm.system import load_system

    bare = tmp_path / "bare.pdb"  # the demo with columns 77-78 (element) blanked
    bare.write_text("".join(line[:76].ljust(80) + "\n" if line.startswith(("ATOM", "HETATM")) else line
                            for line in DEMO.read_text().splitlines(keepends=True)))
    system = load_system(bare, "resname ETH or (resname HOH and resid 7)", force_field=FORCE_FIELDS["ethanol_water.pdb"])
    replica = tmp_path / "replica0"
    replica.mkdir()
    write_topology(system, str(replica / "topology.pdb"))
    dcd = DCDTrajectory(replica / "trajectory.dcd", system, interval_fs=5.0)
    for _ in range(2):
        dcd.write(system.atoms.positions)
    dcd.close()
    universe = replica_universe(replica)
    # the analysis' default RDF reference: heavy atoms of the QM selection
    heavy = universe.select_atoms("(resname ETH) and not element H")
    assert list(heavy.names) == ["C1", "C2", "O1"]
    original = mda.Universe(str(DEMO))
    assert list(universe.atoms.elements) == [e.capitalize() for e in original.atoms.elements]
    assert np.allclose(universe.trajectory[1].positions, original.atoms.positions, atol=1e-4)  # file order again
    rdf = solvent_rdf([universe], "(resname ETH) and not element H", "resname HOH and name O", 8.0)
    assert rdf["n_frames"] == 2 and 2.0 < rdf["first_peak_ang"] < 4.0
