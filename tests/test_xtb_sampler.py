"""xTB/MM sampler and the Langevin driver: valid Frames, NVE energy conservation, stop reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlmm.dynamics.md import run_langevin
from mlmm.frames import read_frames, validate_frame, write_frames
from mlmm.sampling.common import xtb_mm_atoms
from mlmm.sampling.md_sampler import sample_xtb_md
from conftest import solute_with_nearest_waters
from mlmm.system import System

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "ethanol_water.pdb"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> System:
    """Ethanol + its 30 nearest waters from the demo box, written as a non-periodic PDB."""
    system = solute_with_nearest_waters(DEMO, "ETH", 30, tmp_path_factory.mktemp("small") / "eth30.pdb")
    assert len(system.water_molecules) == 30 and not system.atoms.pbc.any()
    return system


def test_sampler_emits_valid_frames(small, tmp_path):
    frames = sample_xtb_md(small, n_frames=3, stride=4, equilibration_steps=4, timestep_fs=0.5,
                           temperature_K=300.0, friction_per_fs=0.01, cutoff_ang=3.5, seed=11)
    assert len(frames) == 3
    for k, frame in zip((8, 12, 16), frames):
        validate_frame(frame)
        assert frame.info["sampler"] == "xtb_md" and frame.info["iteration"] == 0 and frame.info["seed"] == 11
        assert frame.info["source"] == f"{small.source}:step{k}"
        assert frame.get_chemical_symbols()[:9] == small.atoms.get_chemical_symbols()[:9]
        assert abs(frame.get_initial_charges().sum()) < 1e-9
        assert 9 < len(frame) < len(small.atoms)  # 3.5 Å cut keeps some of the 30 waters
    assert not np.allclose(frames[0].positions[:9], frames[1].positions[:9])
    assert write_frames(tmp_path / "f.extxyz", frames) == 3
    back = read_frames(tmp_path / "f.extxyz")
    assert np.allclose(back[2].positions, frames[2].positions)


def _nve(system: System, steps: int, timestep_fs: float):
    atoms = xtb_mm_atoms(system, 8.0)
    e_tot, e_pot = [], []

    def record(step, a):
        e_pot.append(a.get_potential_energy())
        e_tot.append(e_pot[-1] + a.get_kinetic_energy())

    reason, done = run_langevin(atoms, steps=steps, timestep_fs=timestep_fs, temperature_K=300.0, friction_per_fs=0.0,
                                seed=5, on_frame=record, constraints=system.water_constraints())
    assert reason is None and done == steps
    return atoms, np.array(e_tot), np.array(e_pot)


def test_nve_conserves_energy_with_rigid_water(small):
    """Velocity Verlet + RATTLE (Langevin with zero friction) on the xTB/MM potential.

    Over 100 × 0.25 fs the total energy fluctuates ~1e-4 eV while the potential energy moves
    ~0.1 eV: we require std(E_tot) < 1 % of std(E_pot) and no drift above 0.5 meV. Because the
    fluctuation of a symplectic integrator scales as dt², the same 25 fs at 0.5 fs must fluctuate
    2.5–6 times more (4 ideally); an inconsistent force or constraint would break both checks.
    """
    atoms, e_tot, e_pot = _nve(small, 100, 0.25)
    assert e_tot.std() < 0.01 * e_pot.std()
    assert abs(e_tot[-10:].mean() - e_tot[:10].mean()) < 5e-4
    w = np.asarray(small.water_molecules)
    for k, (a, b) in enumerate(((0, 1), (0, 2), (1, 2))):  # at the force field's rigid geometry
        r = np.linalg.norm(atoms.positions[w[:, a]] - atoms.positions[w[:, b]], axis=1)
        assert np.allclose(r, small.water_lengths_ang[:, k], atol=1e-9)
    _, e_tot2, _ = _nve(small, 50, 0.5)
    assert 2.5 < e_tot2.std() / e_tot.std() < 6.0


def test_driver_stops_on_callback_and_blow_up(small):
    atoms = xtb_mm_atoms(small, 8.0)
    seen = []

    def stop_at_six(step, a):
        seen.append(step)
        return "enough" if step == 6 else None

    assert run_langevin(atoms, steps=20, timestep_fs=0.5, temperature_K=300.0, friction_per_fs=0.01, seed=1, stride=3,
                        on_frame=stop_at_six, constraints=small.water_constraints()) == ("enough", 6)
    assert seen == [3, 6]
    reason, done = run_langevin(atoms, steps=5, timestep_fs=0.5, temperature_K=300.0, friction_per_fs=0.01, seed=1,
                                max_force_ev_ang=0.01)
    assert done == 0 and reason.startswith("blow-up at step 0: max |F|")
    # a huge time step makes rigid-water MD explode (SHAKE fails or forces diverge)
    reason, done = run_langevin(atoms, steps=50, timestep_fs=8.0, temperature_K=3000.0, friction_per_fs=0.0, seed=1,
                                max_force_ev_ang=30.0)
    assert done < 50 and reason.startswith("blow-up at step")


def test_driver_is_reproducible(small):
    runs = []
    for _ in range(2):
        atoms = xtb_mm_atoms(small, 8.0)
        run_langevin(atoms, steps=5, timestep_fs=0.5, temperature_K=300.0, friction_per_fs=0.02, seed=9,
                     constraints=small.water_constraints())
        runs.append(atoms.positions.copy())
    assert np.array_equal(runs[0], runs[1])
