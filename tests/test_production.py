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

    from mlmm.dynamics.trajectory import write_dcd, write_topology

    atoms = read(DEMO)
    snaps = []
    for k in range(3):
        snap = atoms.copy()
        snap.positions += 0.1 * k
        snaps.append(snap)
    write_dcd(str(DEMO), snaps, str(tmp_path / "t.dcd"), timestep_ps=0.005)
    write_topology(str(DEMO), str(tmp_path / "top.pdb"))
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
