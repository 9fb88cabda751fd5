"""The README's "Change a setting and rerun one stage" commands, checked on a finished DAG.

A finished run is imitated cheaply: every output of the tiny workflow is created empty and
`snakemake --touch` records it as done, with the same provenance (params, code, input) Snakemake
stores after a real run. Then the README's dry runs must list exactly the stages it promises.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import yaml

from conftest import make_workdir, run_snakemake
from test_workflow import TINY


def _jobs(dry_run_output: str) -> dict[str, int]:
    """Rule -> job count from the "Job stats" table of a dry run ({} when nothing is to be done)."""
    if "Nothing to be done" in dry_run_output:
        return {}
    table = dry_run_output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.MULTILINE)
    return {rule: int(n) for rule, n in rows if rule != "total"}


def _finish(work: Path) -> Path:
    """Record the whole DAG of ``work`` as up to date (outputs created empty, then --touch)."""
    listing = run_snakemake(work, "--summary").stdout
    outputs = [line.split("\t", 1)[0] for line in listing.splitlines()[1:] if "\t" in line]
    assert "results/summary.json" in outputs and "results/report/overview.json" in outputs
    for rel in outputs:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).touch()
    run_snakemake(work, "--touch", "--cores", "1")
    assert _jobs(run_snakemake(work, "-n").stdout) == {}
    return work


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    """A working directory whose whole tiny DAG is recorded as up to date."""
    return _finish(make_workdir(tmp_path, TINY))


def _set(work: Path, section: str, key: str, value) -> None:
    path = work / "config" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(cfg))


# Rules upstream of the models: a change of training or production must never rerun them.
UPSTREAM = ("prepare_system", "sample_", "collect_samples")


def _check(jobs: dict[str, int], expected: dict[str, int], absent: set[str] = frozenset()) -> None:
    """Jobs of `expected` rules with these counts; no job of `absent` or upstream rules."""
    assert {rule: jobs.get(rule, 0) for rule in expected} == expected, jobs
    assert not [rule for rule in jobs if rule in absent or rule.startswith(UPSTREAM)], jobs


def test_training_change_reruns_training_and_downstream_only(finished: Path) -> None:
    _set(finished, "training", "max_epochs", 5)
    jobs = _jobs(run_snakemake(finished, "-n", "--rerun-triggers", "params").stdout)
    # every model (2 iterations x 2 members) and all that depends on one; labels only for it1,
    # whose frames come from the it0 model's walkers (the thermal one and the stability probe);
    # production: 2 final + 1 initial-model replica
    _check(jobs, {
        "train_member": 4, "evaluate_ensemble": 2, "explore": 2, "select": 1, "label_chunk": 1,
        "merge_labels": 1, "production": 3, "production_nve": 1, "production_stability": 1,
        "production_analysis": 1, "report_overview": 1, "summary": 1, "all": 1,
    })
    # modification times alone see nothing: the trigger is the changed training section
    assert _jobs(run_snakemake(finished, "-n", "--rerun-triggers", "mtime").stdout) == {}


def test_production_change_reruns_production_only(finished: Path) -> None:
    _set(finished, "production", "steps", 80)
    jobs = _jobs(run_snakemake(finished, "-n").stdout)
    _check(
        jobs,
        {"production": 3, "production_nve": 1, "production_stability": 1, "production_analysis": 1,
         "summary": 1, "all": 1},
        absent={"train_member", "evaluate_ensemble", "explore", "select", "label_chunk", "merge_labels",
                "report_overview"},
    )


def test_forcerun_one_rule_and_one_file(finished: Path) -> None:
    jobs = _jobs(run_snakemake(finished, "-n", "--forcerun", "select").stdout)
    # select of it1 and everything downstream of it; the walkers, it0 models and the
    # initial-model production replica stay
    _check(
        jobs,
        {"select": 1, "label_chunk": 1, "merge_labels": 1, "train_member": 2, "evaluate_ensemble": 1,
         "production": 2, "report_overview": 1, "summary": 1, "all": 1},
        absent={"explore"},
    )
    # -f on one output file reruns that one job and nothing downstream
    only = _jobs(run_snakemake(finished, "-n", "-f", "results/production/final/replica0/stats.json").stdout)
    assert only == {"production": 1}


@pytest.mark.parametrize(("field", "value", "changed"), [
    ("topology", "charges.psf", "charges.psf"),
    ("force_field", ["amber14/tip3p.xml", "ethanol.xml"], "ethanol.xml"),  # a bundled name is no input
])
def test_changed_force_field_file_reruns_every_rule_that_loads_the_system(tmp_path: Path, field, value, changed) -> None:
    system = {**TINY["system"], "force_field": [], field: value}
    work = make_workdir(tmp_path, {**TINY, "system": system})
    (work / changed).write_text("stand-in: the dry runs below never read it\n")
    _finish(work)
    later = time.time() + 60
    os.utime(work / changed, (later, later))
    out = run_snakemake(work, "-n", "--rerun-triggers", "mtime").stdout
    assert re.search(rf"rule prepare_system:\n\s+input: [^\n]*{re.escape(changed)}", out), out
    jobs = _jobs(out)
    # explore: iteration 1's walker and its stability probe
    loaders = {"prepare_system": 1, "sample_xtb_md": 1, "explore": 2, "production": 3, "production_nve": 1,
               "production_metadynamics": 2}
    assert {rule: jobs.get(rule, 0) for rule in loaders} == loaders, jobs
