"""The Snakemake workflow: lint, dry run of the demo DAG, and a tiny end-to-end run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SNAKEMAKE, make_workdir, run_snakemake


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
    work = make_workdir(tmp_path, {"al": {"max_iterations": "two"}})
    proc = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "-n"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "al.max_iterations: 'two' is not of type 'integer'" in proc.stdout + proc.stderr


TINY = {
    "sampling": {"xtb_md": {"n_frames": 16, "stride": 5, "equilibration_steps": 20, "timestep": 0.5}},
    "labeling": {"chunk_size": 8, "level": {"method": "hf", "basis": "sto-3g"}},
    "training": {
        "n_members": 2, "n_atom_basis": 16, "n_interactions": 1, "n_rbf": 10, "max_epochs": 3,
        "batch_size": 8, "field_cutoff": 8.0, "field_switch_on": 6.5, "test_fraction": 0.2, "val_fraction": 0.2,
    },
    "al": {"max_iterations": 1, "n_walkers": 1, "steps": 30, "stride": 5, "max_selected": 4},
    "production": {"steps": 40, "stride": 10},
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
    assert summary["test_errors_final"]["n_test"] >= 1
    assert np.isfinite(summary["test_errors_final"]["energy_mae"])
    prod = summary["production"]
    assert prod["steps_done"] > 0 and prod["sigma_max"] is not None
    for path in summary["final_models"] + summary["label_databases"]:
        assert (work / path).exists()
    traj = work / summary["production_trajectory"]
    frames = read(traj, index=":")
    universe = mda.Universe(str(work / "results" / "production" / "topology.pdb"), str(traj), format="XYZ")
    assert len(universe.trajectory) == len(frames)
    assert universe.atoms.n_atoms == len(frames[0])
    # rerunning is a no-op
    out = run_snakemake(work, "-n").stdout
    assert "Nothing to be done" in out
