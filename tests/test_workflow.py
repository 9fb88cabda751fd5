"""The Snakemake workflow: lint, dry run of the demo DAG, and a tiny end-to-end run."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import DEMO_SYSTEM, ROOT, SNAKEMAKE, make_workdir, run_snakemake


def test_lint_is_clean() -> None:
    proc = subprocess.run([SNAKEMAKE, "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dry_run_demo_shows_every_iteration(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    out = run_snakemake(work, "-n").stdout
    n_iter, members, walkers = 2, 3, 2  # config/config.yaml
    for it in range(n_iter + 1):
        for m in range(members):
            assert f"results/models/it{it}/member{m}.pt" in out
    for it in range(1, n_iter + 1):
        for w in range(walkers):
            assert f"results/al/it{it}/walker{w}.extxyz" in out
        assert f"results/labels/it{it}/labels.db" in out
    assert "results/summary.json" in out


def test_bad_config_fails_with_field_name(tmp_path: Path) -> None:
    work = make_workdir(tmp_path, {"system": DEMO_SYSTEM, "al": {"max_iterations": "two"}})
    proc = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "-n"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "al.max_iterations: 'two' is not of type 'integer'" in proc.stdout + proc.stderr


def _dry_run_fails(work: Path) -> str:
    proc = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "-n"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("field", ["structure", "topology"])
def test_missing_system_file_fails_at_dag_time_with_field_name(tmp_path: Path, field: str) -> None:
    work = make_workdir(tmp_path, {"system": {**DEMO_SYSTEM, field: "data/no_such_file.prmtop"}})
    out = _dry_run_fails(work)
    assert f"config system.{field}: file 'data/no_such_file.prmtop' does not exist" in out, out


def test_logs_live_in_the_results_dir(tmp_path: Path) -> None:
    # two runs with different results directories must not share a log file
    work = make_workdir(tmp_path, {"system": DEMO_SYSTEM, "results_dir": "run_a", "training": {"field_ablation": {"activate": True}}})
    out = run_snakemake(work, "-n").stdout
    logs = re.findall(r"^\s+log: (.+)$", out, flags=re.MULTILINE)
    assert len(logs) > 20 and all(path.startswith("run_a/logs/") for path in logs), logs


def test_resources_are_set_once(tmp_path: Path) -> None:
    """Memory and wall time come from the rules (every job has both); the SLURM profile sets only
    cluster-specific resources (account, partition, GPU gres), never a second size."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.v8+.yaml").read_text())
    sections = [profile["default-resources"], *profile["set-resources"].values()]
    assert not [key for section in sections for key in section if key in ("mem_mb", "runtime")], profile
    assert {"train_member", "train_member_nofield", "excited_train_member"} <= set(profile["set-resources"])
    work = make_workdir(tmp_path, {"system": DEMO_SYSTEM, "training": {"field_ablation": {"activate": True}}})
    for extra in ([], ["--configfile", str(ROOT / "config/examples/chromophore.yaml")]):
        out = run_snakemake(work, "-n", *extra).stdout
        blocks = re.findall(r"^(?:local)?rule (\w+):\n((?:\s{4}.*\n)+)", out, flags=re.MULTILINE)
        assert len(blocks) > 30
        lacking = {rule for rule, body in blocks if rule != "all" and not re.search(r"resources: .*runtime=.*mem_mb=|resources: .*mem_mb=.*runtime=", body)}
        assert not lacking, lacking


TINY = {
    "system": {**DEMO_SYSTEM, "embedding": {"cutoff": 8.0, "switch_width": 1.5}},
    "sampling": {"xtb_md": {"n_frames": 16, "stride": 5, "equilibration_steps": 20, "timestep": 0.5}},
    "labeling": {"chunk_size": 8, "level": {"method": "hf", "basis": "sto-3g"}},
    "test_set": {"n_frames": 4, "temperature_factors": [1.0]},
    "training": {
        # 60 epochs (≈10 s per member): with fewer, the members do not hold ethanol's O–H bond and the
        # hydroxyl H (GAFF2: a small Lennard-Jones sphere) runs into a water within the 40 production steps
        "n_members": 2, "n_atom_basis": 16, "n_interactions": 1, "n_rbf": 10, "max_epochs": 60,
        "batch_size": 8, "val_fraction": 0.2,
    },
    "al": {"max_iterations": 1, "n_walkers": 1, "steps": 30, "stride": 5, "max_selected": 4, "stability_steps": 20},
    "production": {
        "steps": 40, "stride": 10, "replicas": 2, "nve_steps": 30, "nve_equilibration_steps": 10, "sigma_action": "warn",
        "max_force": 500.0,
        "metadynamics": {"activate": True, "replicas": 2, "steps": 40, "bins": 30,
                         "plumed": "phi: TORSION ATOMS=4,3,2,1\nMETAD ARG=phi PACE=5 HEIGHT=1.0 SIGMA=0.35 FILE=HILLS\n"
                                   "PRINT ARG=phi STRIDE=5 FILE=COLVAR"},
        "cv_distances": [{"name": "C-O", "selection1": "resname ETH and name C1", "selection2": "resname ETH and name O1"}],
    },
}


@pytest.mark.workflow
def test_end_to_end_tiny(tmp_path: Path) -> None:
    import MDAnalysis as mda
    from ase.io import read

    work = make_workdir(tmp_path, TINY)
    run_snakemake(work, "--cores", "2")
    summary = json.loads((work / "results" / "summary.json").read_text())
    assert summary["labels_per_iteration"][0] + summary["failed_labels_per_iteration"][0] == 16
    assert summary["labels_per_iteration"][0] >= 14
    assert len(summary["labels_per_iteration"]) == 2
    assert summary["al_iterations_run"] == 1
    # the fixed test set: its own 4 frames (none of the 16 + 4 training labels), the same every iteration
    assert [e["n_test"] for e in summary["test_errors_per_iteration"]] == [4, 4]
    assert summary["test_errors_final"]["test_set"] == "results/test_set/labels.db"
    assert np.isfinite(summary["test_errors_final"]["energy_mae"])
    prod = summary["production"]
    assert len(prod["replicas"]) == 2 and all(r["steps_done"] == 40 for r in prod["replicas"])  # action warn never stops
    for path in summary["final_models"] + summary["label_databases"]:
        assert (work / path).exists()
    co = []
    for traj, replica in zip(prod["trajectories"], prod["replicas"]):
        universe = mda.Universe(str(work / prod["topology"]), str(work / traj))
        assert universe.trajectory.n_frames == replica["n_frames"] == 4
        assert universe.atoms.n_atoms == len(read(work / "data/demo/ethanol_water.pdb"))
        co += [float(np.linalg.norm(universe.atoms.positions[0] - universe.atoms.positions[2])) for _ in universe.trajectory]
    assert prod["cv_distances"]["C-O"]["mean_ang"] == pytest.approx(np.mean(co), abs=1e-4)  # atoms 0, 2 = C1, O1
    assert prod["rdf"]["n_frames"] == 8 and prod["rdf"]["first_peak_ang"] > 2.0
    assert np.isfinite(prod["nve"]["drift_eV_per_atom_per_ps"]) and prod["nve"]["steps"] == 30
    stability = summary["production_stability"]
    assert stability["final"]["replicas"] == 2 and stability["initial"]["replicas"] == 1
    metad = summary["metadynamics"]
    assert metad["replicas"] == 2 and metad["periodic"] and metad["cv_range"] == pytest.approx([-np.pi, np.pi])
    # a 3-epoch model heats up under the bias; a replica may end early, but only with its reason on record
    assert all(run["steps_done"] == 40 or "blow-up" in (run.get("stop_reason") or "") for run in metad["runs"])
    assert any(run["steps_done"] == 40 for run in metad["runs"])
    hills = np.loadtxt(work / "results/production/metadynamics/replica0/HILLS", comments="#")
    # PLUMED updates at the force evaluations of steps 0..39: a hill at steps 5, …, 35; well-tempered heights shrink
    assert len(hills) == 7 and hills[-1, 3] < hills[0, 3]
    assert (work / "results/production/metadynamics/fes.png").stat().st_size > 1000
    for png in ("rdf", "sigma", "energy", "cvs"):
        assert (work / f"results/production/{png}.png").stat().st_size > 1000
    # iteration 1: a thermal walker and the stability probe (20 steps at the production temperature)
    selection = json.loads((work / "results/al/it1/selection.json").read_text())
    assert [w["kind"] for w in selection["walkers"]] == ["thermal", "stability probe"]
    assert selection["walkers"][1]["steps_requested"] == 20 and "production_stable" in selection["criteria"]
    assert selection["trust_levels"]["sigma_hi"] >= 2.0 and selection["trust_levels"]["reference_error"] > 0
    # rerunning is a no-op
    out = run_snakemake(work, "-n").stdout
    assert "Nothing to be done" in out
    # extending the run by one AL iteration (default rerun triggers, params included) schedules
    # only iteration-2 jobs and what uses the final models, never a job of iterations 0-1
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["al"]["max_iterations"] = 2
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    out = run_snakemake(work, "-n").stdout
    # iteration 2's thermal walker and its stability probe
    assert re.search(r"^explore\s+2$", out, flags=re.MULTILINE) and re.search(r"^train_member\s+2$", out, flags=re.MULTILINE), out
    assert set(re.findall(r"\bit=(\d+)", out)) == {"2"}, out
    assert not re.search(r"output: .*/it[01][/_]", out), out
