"""Shared test helpers: paths and a Snakemake runner for workflow tests in temporary folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def make_workdir(tmp_path: Path, config: dict | None = None) -> Path:
    """A Snakemake working directory: demo data linked in, config/config.yaml written (demo if None)."""
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    (work / "data").symlink_to(ROOT / "data")
    if config is None:
        shutil.copy(ROOT / "config" / "config.yaml", work / "config" / "config.yaml")
    else:
        (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return work


def run_snakemake(workdir: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir``; raise with the output if it fails."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    if proc.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc
