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


def solute_with_nearest_waters(source: Path, resname: str, n_waters: int, out_path: Path):
    """The ``resname`` solute of ``source`` plus its ``n_waters`` nearest waters (by O distance), written
    as a non-periodic PDB at ``out_path`` and loaded as a System with that solute as QM region."""
    import warnings

    import MDAnalysis as mda
    import numpy as np

    from mlmm.system import load_system

    u = mda.Universe(str(source))
    solute = u.select_atoms(f"resname {resname}")
    oxygens = u.select_atoms("resname HOH and name O")
    d = np.linalg.norm(oxygens.positions[:, None] - solute.positions[None], axis=2).min(axis=1)
    keep = solute + sum((w.residue.atoms for w in oxygens[np.argsort(d)[:n_waters]]), u.atoms[[]])
    u.trajectory.ts.dimensions = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keep.write(str(out_path))
    return load_system(out_path, f"resname {resname}")


#: The system part of the demo config: what a config must give (the rest has schema defaults).
DEMO_SYSTEM = {"structure": "data/demo/ethanol_water.pdb", "qm_selection": "resname ETH"}


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def config_with(**sections: dict) -> dict:
    """The validated config (schema defaults) of the demo system with ``sections`` merged in."""
    from mlmm.config import validate_config

    return validate_config(_merge({"system": dict(DEMO_SYSTEM)}, sections), source="test config")


def settings_with(**sections: dict):
    """:class:`mlmm.settings.Settings` of :func:`config_with` (library calls in tests take these)."""
    from mlmm.settings import Settings

    return Settings.from_config(config_with(**sections))


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


def level_with(**keys):
    """:class:`mlmm.settings.LevelSettings` of ``labeling.level`` with ``keys`` (schema defaults otherwise)."""
    return settings_with(labeling={"level": keys}).labeling.level


def td_with(**keys):
    """:class:`mlmm.settings.TDSettings` of ``excited.td`` with ``keys`` (schema defaults otherwise)."""
    return settings_with(excited={"td": keys}).excited.td


def embedding_with(**keys):
    """:class:`mlmm.settings.EmbeddingSettings` of ``system.embedding`` with ``keys`` (schema defaults otherwise)."""
    return settings_with(system={"embedding": keys}).system.embedding
