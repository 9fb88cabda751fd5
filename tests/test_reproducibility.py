"""A run is reproducible on a given machine: the tiny workflow twice, and once killed and resumed.

Both compare every entry of results/summary.json (numbers bit for bit) except wall-clock timings.
One uninterrupted run (module fixture) serves as the reference of both tests.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, SNAKEMAKE, make_workdir, run_snakemake
from mlmm.report.spread import summary_differences
from test_workflow import TINY


def assert_same_summary(work_a: Path, work_b: Path) -> int:
    """Both runs' summaries agree in every non-timing entry; returns the number of numbers compared."""
    a, b = (json.loads((work / "results/summary.json").read_text()) for work in (work_a, work_b))
    n, differ = summary_differences(a, b)
    assert not differ, f"{len(differ)} of {n} numbers/entries differ, e.g. {dict(list(differ.items())[:8])}"
    return n


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """(working directory, wall s) of one uninterrupted tiny run."""
    work = make_workdir(tmp_path_factory.mktemp("reference"), TINY)
    t0 = time.perf_counter()
    run_snakemake(work, "--cores", "2")
    return work, time.perf_counter() - t0


@pytest.mark.workflow
def test_two_runs_give_the_same_summary(reference: tuple[Path, float], tmp_path: Path) -> None:
    work = make_workdir(tmp_path, TINY)
    run_snakemake(work, "--cores", "2")
    n = assert_same_summary(reference[0], work)
    assert n > 50  # the summary is not (nearly) empty
    print(f"reference run {reference[1]:.0f} s; {n} numbers identical")


@pytest.mark.workflow
@pytest.mark.slow
def test_killed_and_resumed_run_gives_the_same_summary(reference: tuple[Path, float], tmp_path: Path) -> None:
    work = make_workdir(tmp_path, TINY)
    delay = random.Random(14).uniform(0.15, 0.85) * reference[1]  # seeded: the same moment each time
    proc = subprocess.Popen(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and every job it started, as on a node failure
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run finished before the kill at {delay:.0f} s"
    assert not (work / "results/summary.json").exists()
    run_snakemake(work, "--unlock")
    run_snakemake(work, "--cores", "2", "--rerun-incomplete")
    n = assert_same_summary(reference[0], work)
    print(f"killed after {delay:.0f} s of a {reference[1]:.0f} s run; resumed; {n} numbers identical")
