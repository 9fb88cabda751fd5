"""A user's config is the config they get: --configfile is never merged over the demo's
config/config.yaml (issue 14, item 9), checked on Snakemake's dry run in a temporary workdir."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from conftest import DEMO_SYSTEM, ROOT, SNAKEMAKE, make_workdir, run_snakemake

#: rules that exist only because of the demo's ethanol-specific or demo-only settings
DEMO_ONLY_RULES = ("sample_metadynamics", "sample_normal_modes", "sample_wigner", "sample_pca", "test_set_metadynamics",
                   "train_member_nofield", "field_ablation", "production_metadynamics", "metadynamics_fes")


def _jobs(stdout: str) -> dict[str, int]:
    """Job counts of a dry run's job-stats table."""
    table = stdout.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_a_configfile_with_only_the_system_gets_no_demo_settings(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)  # the demo's config/config.yaml is in the workdir, as in a checkout
    user = work / "my_system.yaml"
    user.write_text(yaml.safe_dump({"system": DEMO_SYSTEM}))
    demo = _jobs(run_snakemake(work, "-n").stdout)
    mine = _jobs(run_snakemake(work, "-n", "--configfile", str(user)).stdout)
    assert all(demo.get(rule) for rule in DEMO_ONLY_RULES)  # premise: the demo has them
    assert not any(rule in mine for rule in DEMO_ONLY_RULES), mine
    # schema defaults, not the demo's values: 2 AL iterations of 2 walkers + the stability probe, 3 members
    assert (mine["explore"], mine["select"], mine["train_member"]) == (6, 2, 9)
    # the demo: 7 iterations of 3 walkers + the probe, 3 members trained at iterations 0-7
    assert (demo["explore"], demo["select"], demo["train_member"]) == (28, 7, 24)


def test_configfiles_merge_in_order_for_an_overlay(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    overlay = ROOT / "config" / "examples" / "sampling_adaptive.yaml"
    jobs = _jobs(run_snakemake(work, "-n", "--configfile", "config/config.yaml", str(overlay)).stdout)
    assert jobs["sample_adaptive"] == 1 and jobs["sample_metadynamics"] == 1


def test_a_config_without_the_system_names_the_missing_key(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    user = work / "no_structure.yaml"
    user.write_text(yaml.safe_dump({"system": {"qm_selection": "resname MOL"}}))
    proc = subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "-n",
                           "--configfile", str(user)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"{user} (with --config): system.structure: required" in proc.stdout + proc.stderr
