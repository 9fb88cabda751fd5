"""The OpenMM MD driver: the combined System (force field + QM PythonForce) against finite
differences, NVE energy conservation with the QM term, seeded reproducibility, stop reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO, embedding_with, load_demo, rigid_waters, solute_with_nearest_waters
from mlmm.dynamics.md import md_energy_forces, run_md
from mlmm.potentials import build_potential, ensemble_potential
from mlmm.sampling.common import xtb_mm_potential
from mlmm.system import System
from test_potentials import ensemble
from test_sampling_uncertainty import EMBEDDING


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> System:
    """Ethanol + its 30 nearest waters from the demo box, no box."""
    return solute_with_nearest_waters(DEMO, "ETH", 30, tmp_path_factory.mktemp("small") / "eth30.pdb")


def test_combined_system_forces_are_minus_the_energy_gradient(small):
    """The MD's OpenMM System (partitioned force field + the ensemble as PythonForce, Reference
    platform): OpenMM's forces on QM atoms and MM sites = -dE/dR of its total energy."""
    potential = ensemble_potential(small, ensemble(), embedding=EMBEDDING, mm_platform="Reference")
    energy_forces = md_energy_forces(potential)
    pos0 = small.atoms.positions

    e0, f0 = energy_forces(pos0)
    e_qm = potential.qm_energy_forces(small.atoms.positions)[0]
    assert e0 == pytest.approx(e_qm + potential.mm.energy_forces(small.atoms.positions)[0], abs=1e-9)
    h = 1e-4
    check = (0, 2, 3, 9, 10, 13, 40)  # QM atoms, near and far waters (mlmm order)
    for i in check:
        for k in range(3):
            p = pos0.copy()
            p[i, k] += h
            ep = energy_forces(p)[0]
            p[i, k] -= 2 * h
            em = energy_forces(p)[0]
            assert f0[i, k] == pytest.approx(-(ep - em) / (2 * h), abs=1e-6), (i, k)
    qm_only = potential.qm_energy_forces(small.atoms.positions)[1]
    assert np.abs(qm_only[small.n_qm:]).max() > 1e-4  # the model's field acts on MM sites through the PythonForce


def _nve(system: System, steps: int, timestep_fs: float):
    potential = xtb_mm_potential(system, embedding_with(cutoff=8.0))
    e_tot, e_pot = [], []

    def record(step, atoms):
        e_pot.append(atoms.get_potential_energy())
        e_tot.append(e_pot[-1] + atoms.info["kinetic_energy_ev"])

    run = run_md(potential, steps=steps, timestep_fs=timestep_fs, temperature_K=300.0, friction_per_fs=0.0,
                 seed=5, on_frame=record)
    assert run.stop_reason is None and run.steps_done == steps
    return run, np.array(e_tot), np.array(e_pot)


def test_nve_conserves_energy_with_the_qm_term(small):
    """Velocity Verlet (OpenMM) with the xTB/MM QM term as PythonForce and rigid waters.

    Over 100 × 0.25 fs the total energy fluctuates ~1e-4 eV while the potential energy moves
    ~0.1 eV: std(E_tot) < 1 % of std(E_pot), no drift above 0.5 meV. The fluctuation of a
    symplectic integrator scales as dt²: 25 fs at 0.5 fs fluctuate 2.5–6 times more (4 ideally).
    An inconsistent QM force, a missing MM-site force or a broken constraint would fail both.
    """
    run, e_tot, e_pot = _nve(small, 100, 0.25)
    assert e_tot.std() < 0.01 * e_pot.std()
    assert abs(e_tot[-10:].mean() - e_tot[:10].mean()) < 5e-4
    waters, lengths = rigid_waters(small)
    pos = run.final_state.positions
    for k, (a, b) in enumerate(((0, 1), (0, 2), (1, 2))):
        r = np.linalg.norm(pos[waters[:, a]] - pos[waters[:, b]], axis=1)
        np.testing.assert_allclose(r, lengths[:, k], rtol=1e-6)
    _, e_tot2, _ = _nve(small, 50, 0.5)
    assert 2.5 < e_tot2.std() / e_tot.std() < 6.0


def test_nve_in_the_periodic_box_with_pme():
    """The demo box (PME, 209 rigid waters, xTB/MM): 100 × 0.25 fs conserve the total energy."""
    run, e_tot, e_pot = _nve(load_demo(), 100, 0.25)
    assert e_tot.std() < 0.01 * e_pot.std() and abs(e_tot[-10:].mean() - e_tot[:10].mean()) < 1e-3


def test_same_seed_same_trajectory(small):
    """Seeded velocities and thermostat: bit-identical runs (each with a fresh potential, as every
    job has: tblite starts its SCF from the previous wavefunction); another seed, another
    trajectory; a run continued from a final state starts there (the leapfrog's half-step water
    velocities projected onto the rigid-water constraints at the positions)."""
    kw = dict(steps=10, timestep_fs=0.5, temperature_K=300.0, friction_per_fs=0.02, stride=5)
    a, b = (run_md(xtb_mm_potential(small, embedding_with(cutoff=8.0)), seed=9, **kw) for _ in range(2))
    assert np.array_equal(a.final_state.positions, b.final_state.positions)
    assert np.array_equal(a.final_state.get_momenta(), b.final_state.get_momenta())
    c = run_md(xtb_mm_potential(small, embedding_with(cutoff=8.0)), seed=10, **kw)
    assert not np.allclose(a.final_state.positions, c.final_state.positions)
    d = run_md(xtb_mm_potential(small, embedding_with(cutoff=8.0)), seed=9, start=a.final_state, **{**kw, "steps": 0})
    np.testing.assert_allclose(d.final_state.positions, a.final_state.positions, atol=1e-6)
    n_qm = small.n_qm
    np.testing.assert_allclose(d.final_state.get_momenta()[:n_qm], a.final_state.get_momenta()[:n_qm], atol=1e-9)
    assert d.final_state.get_kinetic_energy() == pytest.approx(a.final_state.get_kinetic_energy(), rel=0.02)


def test_driver_stops_on_callback_and_blow_up(small):
    potential = xtb_mm_potential(small, embedding_with(cutoff=8.0))
    seen = []

    def stop_at_six(step, atoms):
        seen.append(step)
        return "enough" if step == 6 else None

    run = run_md(potential, steps=20, timestep_fs=0.5, temperature_K=300.0, friction_per_fs=0.01, seed=1, stride=3,
                 on_frame=stop_at_six)
    assert (run.stop_reason, run.steps_done, seen) == ("enough", 6, [3, 6])
    run = run_md(potential, steps=5, timestep_fs=0.5, temperature_K=300.0, friction_per_fs=0.01, seed=1,
                 max_force_ev_ang=0.01)
    assert run.steps_done == 0 and run.stop_reason.startswith("blow-up at step 0: max |F")
    # a huge time step at a high temperature makes the MD explode
    run = run_md(potential, steps=50, timestep_fs=8.0, temperature_K=3000.0, friction_per_fs=0.0, seed=1,
                 stride=10, max_force_ev_ang=30.0)
    assert run.steps_done < 50 and run.stop_reason.startswith("blow-up at step"), run.stop_reason


def test_saved_frames_and_frame_energies(small, tmp_path):
    """Frames at first_frame_after + k·stride; each frame's energies are those of the potential at
    its positions (a fresh ASE evaluation); the DCD holds the saved steps in file order."""
    import MDAnalysis as mda

    potential = build_potential("xtb", small, embedding=embedding_with(cutoff=8.0))
    frames = []

    def keep(step, atoms):
        frames.append((step, atoms.copy(), atoms.get_potential_energy(), dict(potential.results)))

    trajectory = tmp_path / "t.dcd"
    run = run_md(potential, steps=12, timestep_fs=0.5, temperature_K=300.0, friction_per_fs=0.02, seed=3, stride=4,
                 first_frame_after=2, on_frame=keep, trajectory=trajectory)
    assert run.stop_reason is None and [f[0] for f in frames] == [6, 10]
    check = build_potential("xtb", small, embedding=embedding_with(cutoff=8.0))
    for step, atoms, e_total, results in frames:
        atoms.calc = check
        assert atoms.get_potential_energy() == pytest.approx(e_total, abs=2e-5)  # CPU platform precision
        assert results["energy"] == pytest.approx(e_total, abs=2e-5) and results["qm_energy"] < -300
    u = mda.Universe(str(small.source), str(trajectory))
    assert u.trajectory.n_frames == 2
    np.testing.assert_allclose(u.trajectory[1].positions, small.to_file_order(frames[1][1].positions), atol=1e-3)


def test_mlp_metadynamics_on_openmm_writes_hills_and_the_bias_grows(tmp_path):
    """MLP/MM well-tempered metaD (the ensemble as PythonForce, PLUMED as a second one): HILLS every
    PACE steps of the run, growing bias in COLVAR, σ and energies of the unbiased potential."""
    from mlmm.dynamics.metadynamics import run_mlp_metadynamics
    from mlmm.engines.plumed import read_plumed_table

    plumed = "phi: TORSION ATOMS=4,3,2,1\nMETAD ARG=phi PACE=5 HEIGHT=2.0 SIGMA=0.3 FILE=HILLS\nPRINT ARG=phi,metad.bias STRIDE=5 FILE=COLVAR\n"
    plumed = plumed.replace("METAD", "metad: METAD")
    system = solute_with_nearest_waters(DEMO, "ETH", 4, tmp_path / "eth4.pdb")  # untrained members: keep it short
    potential = ensemble_potential(system, ensemble(), embedding=EMBEDDING)
    result = run_mlp_metadynamics(system, potential, plumed_input=plumed, biasfactor=5.0, out_dir=tmp_path / "metad",
                                  steps=40, timestep_fs=0.25, temperature_K=300.0, friction_per_fs=0.02, stride=10,
                                  seed=4, sigma_stop=1e9, max_force=1e6, sampler="test", iteration=0, source="test")
    assert result.stop_reason is None and len(result.sigmas) == 4 and all(s > 0 for s in result.sigmas)
    names, hills = read_plumed_table(tmp_path / "metad" / "HILLS")
    np.testing.assert_allclose(hills[:, 0], np.arange(5, 40, 5) * 0.25e-3)
    cnames, colvar = read_plumed_table(tmp_path / "metad" / "COLVAR")
    bias = colvar[:, cnames.index("metad.bias")]
    assert bias[0] == 0.0 and bias[-1] > 0.1  # kJ/mol
    assert (tmp_path / "metad" / "plumed.log").is_file()


RESUMABLE_RUN = """
import json, logging, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
logging.basicConfig(level=logging.INFO)
sys.path.insert(0, {tests!r})
from conftest import DEMO, solute_with_nearest_waters
from test_potentials import ensemble
from test_sampling_uncertainty import EMBEDDING
from mlmm.dynamics.md import CheckpointSpec
from mlmm.dynamics.mlp_md import run_mlp_md
from mlmm.potentials import ensemble_potential

out = Path(sys.argv[1])
system = solute_with_nearest_waters(DEMO, "ETH", 6, out / "eth6.pdb")
# untrained members: at 0.25 fs their forces blow this run up after 68 steps, at 0.1 fs it runs through
result = run_mlp_md(system, ensemble_potential(system, ensemble(), embedding=EMBEDDING), steps=80, timestep_fs=0.1,
                    temperature_K=300.0, friction_per_fs=0.02, stride=5, seed=3, sigma_stop=1e9, max_force=1e6,
                    sampler="t", iteration=0, source="t", trajectory=out / "t.dcd",
                    checkpoint=CheckpointSpec(out / "checkpoint.pkl", 20, "the same run"))
(out / "result.json").write_text(json.dumps({{"sigmas": result.sigmas, "energies": result.potential_energies,
    "times": result.times_fs, "final": result.final_state.positions.tolist(), "steps": result.steps_done}}))
"""


def test_a_killed_run_resumes_from_its_checkpoint_with_the_same_trajectory(tmp_path):
    """An MLP/MM run killed (SIGKILL, as a wall-time limit does) after its first checkpoint and
    started again continues from it: the same σ and energies at every saved step, the same end
    state and DCD as a run never interrupted; the checkpoint is gone once the run ended."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import MDAnalysis as mda

    script = tmp_path / "run.py"
    script.write_text(RESUMABLE_RUN.format(tests=str(Path(__file__).resolve().parent)))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))

    def run(out: Path, kill: bool) -> None:
        out.mkdir()
        proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        if kill:
            while not (out / "checkpoint.pkl").exists():
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert not (out / "result.json").exists() and (out / "t.dcd.partial").exists()
            proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, output
        assert ("resuming from" in output) == kill, output

    run(tmp_path / "reference", kill=False)
    run(tmp_path / "killed", kill=True)
    a, b = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("reference", "killed"))
    assert a["steps"] == b["steps"] == 80 and len(a["sigmas"]) == 16
    assert a == b  # bit for bit
    assert not (tmp_path / "killed" / "checkpoint.pkl").exists()
    ua, ub = (mda.Universe(str(tmp_path / d / "eth6.pdb"), str(tmp_path / d / "t.dcd")) for d in ("reference", "killed"))
    assert ua.trajectory.n_frames == ub.trajectory.n_frames == 16
    for fa, fb in zip(ua.trajectory, ub.trajectory):
        np.testing.assert_array_equal(fa.positions, fb.positions)


def test_npt_barostat_moves_the_box_and_the_qm_term_follows():
    """NPT (Monte Carlo barostat) on the demo box with xTB/MM: the box changes, 5 kbar compresses
    it below the 1 bar run; saved steps carry the current box, and the ethanol is scaled as one
    molecule (its C–C bond stays a bond)."""
    volumes = {}
    for pressure in (1.0, 5000.0):
        system = load_demo()
        v0 = system.atoms.get_volume()
        cells, cc = [], []

        def record(step, atoms):
            cells.append(atoms.cell.array.copy())
            cc.append(np.linalg.norm(atoms.positions[0] - atoms.positions[1]))

        run = run_md(xtb_mm_potential(system, embedding_with(cutoff=8.0)), steps=400, timestep_fs=1.0, temperature_K=300.0,
                     friction_per_fs=0.01, seed=2, stride=25, on_frame=record, pressure_bar=pressure)
        assert run.stop_reason is None
        volumes[pressure] = run.final_state.get_volume()
        assert len({np.round(np.linalg.det(c), 3) for c in cells}) > 1  # the box moved
        np.testing.assert_allclose(run.final_state.cell.array, cells[-1])
        assert 1.45 < min(cc) and max(cc) < 1.65  # Å
        assert system.atoms.get_volume() == v0  # the System itself keeps its box
    assert volumes[5000.0] < min(volumes[1.0], v0)
