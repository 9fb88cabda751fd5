"""The tiny workflow through a real single-node SLURM with `--profile profiles/slurm`.

tests/slurm/up.sh brings up munged, MariaDB, slurmdbd, slurmctld and slurmd on localhost (installing
the Debian packages as root when missing); tests/slurm/down.sh stops exactly those daemons. The test
checks that every job went through sbatch: `sacct` lists one completed job per workflow job, tagged
with its rule, under the test account.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import ROOT, SNAKEMAKE, make_workdir
from test_workflow import TINY

UP, DOWN = ROOT / "tests" / "slurm" / "up.sh", ROOT / "tests" / "slurm" / "down.sh"
PORT_BASE = os.environ.get("MLMM_SLURM_PORT_BASE", "16817")  # away from a real cluster's 6817-6819
ACCOUNT = "mlmm"


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Environment (SLURM_CONF, account) of a freshly started test cluster; torn down afterwards."""
    state = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, MLMM_SLURM_PORT_BASE=PORT_BASE, MLMM_SLURM_ACCOUNT=ACCOUNT)
    up = subprocess.run(["bash", str(UP), str(state)], capture_output=True, text=True, env=env, timeout=600)
    if up.returncode == 3:
        subprocess.run(["bash", str(DOWN), str(state)], timeout=120)
        pytest.skip(up.stderr.strip())
    try:
        assert up.returncode == 0, f"tests/slurm/up.sh failed:\n{up.stdout}\n{up.stderr}"
        env["SLURM_CONF"] = str(state / "slurm.conf")
        yield env
    finally:
        subprocess.run(["bash", str(DOWN), str(state)], timeout=120)


def _sacct(env: dict) -> list[dict]:
    """Allocations (no steps) of the test account as dicts."""
    fields = ["JobID", "JobName", "Account", "State", "ExitCode", "Comment", "AllocCPUS", "Elapsed"]
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", f"--accounts={ACCOUNT}", "-S", "now-1days", "-o", ",".join(fields)],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    ).stdout
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]


@pytest.mark.workflow
def test_tiny_workflow_through_slurm_profile(tmp_path: Path, slurm_env: dict) -> None:
    work = make_workdir(tmp_path, TINY)
    env = dict(slurm_env, OMP_NUM_THREADS="1", MLMM_SLURM_GPU_GRES="")  # CPU-only test node
    cmd = [
        "timeout", "-k", "30", "1200",  # the plugin can wait forever on a broken status check
        SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
        "--profile", str(ROOT / "profiles" / "slurm"),
        "--jobs", "4", "--latency-wait", "5",
        "--slurm-init-seconds-before-status-checks", "2", "--max-status-checks-per-second", "2",
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, timeout=1300)
    wall = time.monotonic() - start
    log = proc.stdout[-8000:] + proc.stderr[-8000:]
    assert proc.returncode == 0, f"snakemake --profile profiles/slurm failed ({proc.returncode}):\n{log}"
    summary = json.loads((work / "results" / "summary.json").read_text())
    assert summary["al_iterations_run"] == 1
    jobs = _sacct(slurm_env)
    rules = {job["Comment"].split("_wildcards_")[0].removeprefix("rule_") for job in jobs}
    expected = {"prepare_system", "sample_xtb_md", "collect_samples", "label_chunk", "merge_labels",
                "train_member", "evaluate_ensemble", "explore", "select", "production", "production_nve",
                "production_stability", "production_analysis", "report_overview", "summary"}
    assert expected <= rules, f"rules missing from sacct: {expected - rules}\n{jobs}"
    assert all(job["State"] == "COMPLETED" and job["ExitCode"] == "0:0" for job in jobs), jobs
    assert all(job["Account"] == ACCOUNT for job in jobs)
    # every job of the run was an sbatch allocation: as many as Snakemake's finished steps except
    # the target rule `all`, which has no action and never leaves the submitting process
    n_steps = int(proc.stderr.rsplit(" steps (100%) done", 1)[0].rsplit("of ", 1)[1])
    assert len(jobs) == n_steps - 1, (len(jobs), n_steps)
    print(f"SLURM run: {len(jobs)} sbatch jobs, wall {wall:.0f} s")

    # the HTML report of these results holds the overview figure, the AL table, their captions and
    # the other stages' figures
    report = work / "report.html"
    subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
                    "--report", str(report)], capture_output=True, text=True, env=env, check=True, timeout=300)
    html = report.read_text()
    for name in ("al_sigma_histograms.png", "al_table.csv", "rdf.png"):
        assert name in html, name
    assert "Ensemble force disagreement" in html and "One row per active-learning iteration" in html
