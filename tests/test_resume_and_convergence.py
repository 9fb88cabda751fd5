"""Restart after a killed labeling job, and the convergence flag stopping further work.

Both run the real workflow (xTB sampling, PySCF labels, schnetpack training) on tiny settings.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DEMO_SYSTEM, ROOT, SNAKEMAKE, make_workdir, run_snakemake

TINY_SAMPLING = {"xtb_md": {"n_frames": 8, "stride": 5, "equilibration_steps": 10}}
TINY_TRAINING = {
    "n_members": 2, "n_atom_basis": 8, "n_interactions": 1, "n_rbf": 8, "max_epochs": 2,
    "batch_size": 4, "val_fraction": 0.25,
}
TINY_TEST_SET = {"n_frames": 2, "temperature_factors": [1.0]}


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute("select count(*) from systems").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.workflow
def test_killed_labeling_job_resumes_with_missing_frames_only(tmp_path: Path) -> None:
    config = {"system": DEMO_SYSTEM, "sampling": TINY_SAMPLING, "labeling": {"chunk_size": 8, "level": {"method": "hf", "basis": "6-31g"}}}
    work = make_workdir(tmp_path, config)
    target = "results/labels/it0/chunk0.db"
    run_snakemake(work, "--cores", "1", "results/sampling/frames.extxyz")
    partial = work / "results/labels/it0/chunk0.partial.db"
    proc = subprocess.Popen(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "1", target],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    deadline = time.time() + 300
    while _rows(partial) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the job dies mid-chunk, as on a node failure
    proc.wait()
    done_before = _rows(partial)
    assert 2 <= done_before < 8, f"kill came too late or too early ({done_before} frames labelled)"
    assert not (work / target).exists()

    run_snakemake(work, "--unlock")  # what a user does after a killed run
    run_snakemake(work, "--cores", "1", "--rerun-incomplete", target)
    report = json.loads((work / "results/labels/it0/chunk0.json").read_text())
    assert report["n_ok"] == 8
    assert report["n_resumed"] == done_before  # only the missing frames were computed again
    assert sum(not e["resumed"] for e in report["frames"]) == 8 - done_before
    assert not partial.exists()


@pytest.mark.workflow
def test_convergence_flag_stops_labeling_and_carries_models_forward(tmp_path: Path) -> None:
    # trust levels far above any σ: every explored frame counts as accurate, so iteration 1
    # converges and iteration 2 must neither explore, select, label nor retrain
    config = {
        "system": {**DEMO_SYSTEM, "embedding": {"cutoff": 8.0, "switch_width": 1.5}},
        "sampling": TINY_SAMPLING,
        "labeling": {"chunk_size": 8, "level": {"method": "hf", "basis": "sto-3g"}},
        "test_set": TINY_TEST_SET,
        "training": TINY_TRAINING,
        "al": {"max_iterations": 2, "n_walkers": 1, "steps": 20, "stride": 5, "max_selected": 4, "stability_steps": 20,
               "sigma_lo": 50.0, "sigma_hi": 60.0, "sigma_stop": 100.0, "max_force": 500.0},
        "production": {"steps": 10, "stride": 5, "sigma_stop": 100.0, "max_force": 500.0, "replicas": 1,
                       "nve_steps": 10, "nve_equilibration_steps": 5},
    }
    work = make_workdir(tmp_path, config)
    run_snakemake(work, "--cores", "2")
    res = work / "results"
    summary = json.loads((res / "summary.json").read_text())
    assert summary["converged"] is True and summary["converged_at_iteration"] == 1
    assert summary["labels_per_iteration"] == [8, 0, 0]
    sel2 = json.loads((res / "al/it2/selection.json").read_text())
    assert sel2["converged"] and sel2["n_selected"] == 0 and sel2["n_explored"] == 0
    for w in range(2):  # the thermal walker and the stability probe
        walker = json.loads((res / f"al/it2/walker{w}.json").read_text())
        assert walker["skipped"] is True and walker["converged_at"] == 1
    sel1 = json.loads((res / "al/it1/selection.json").read_text())
    probe = json.loads((res / "al/it1/walker1.json").read_text())
    assert probe["kind"] == "stability probe" and probe["steps_done"] == 20 and probe["temperature_K"] == 300.0
    assert sel1["criteria"]["production_stable"] == {"met": True, "time_ps": 0.01, "stop_reason": None}
    for m in range(2):
        for it in (1, 2):
            carried = json.loads((res / f"models/it{it}/member{m}.json").read_text())
            assert carried["carried_forward_from"] == f"results/models/it{it - 1}/member{m}.pt"
        assert (res / f"models/it2/member{m}.pt").read_bytes() == (res / f"models/it0/member{m}.pt").read_bytes()
