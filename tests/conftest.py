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


def solute_with_nearest_waters(source: Path, resname: str, n_waters: int, out_path: Path, force_field: list[str] | None = None):
    """:func:`mlmm.system.solute_with_nearest_waters` with the bundled structure's force field
    (:data:`FORCE_FIELDS`) unless ``force_field`` is given."""
    from mlmm.system import solute_with_nearest_waters as cluster

    return cluster(source, resname, n_waters, out_path, force_field or FORCE_FIELDS[Path(source).name])


#: The demo's force field: OpenMM's TIP3P water and the bundled GAFF2 ethanol (paths from the checkout).
DEMO_FORCE_FIELD = ["amber14/tip3p.xml", "data/demo/ethanol_gaff2.xml"]
DEMO = ROOT / "data" / "demo" / "ethanol_water.pdb"
#: Force fields of the bundled structures (absolute paths: tests run in temporary folders too).
FORCE_FIELDS = {
    "ethanol_water.pdb": ["amber14/tip3p.xml", str(ROOT / "data" / "demo" / "ethanol_gaff2.xml")],
    "butadiene_water.pdb": ["amber14/tip3p.xml", str(ROOT / "data" / "chromophore" / "butadiene_gaff2.xml")],
    "at_pair_water.pdb": ["amber14/tip3p.xml", str(ROOT / "data" / "bench" / "at_pair_gaff2.xml")],
    "chignolin_water.pdb": ["amber14-all.xml", "amber14/tip3p.xml"],
}


def load_demo(qm_selection: str = "resname ETH", **kwargs):
    """The demo System (ethanol in the periodic TIP3P box) with ``qm_selection`` as QM region."""
    from mlmm.system import load_system

    return load_system(DEMO, qm_selection, force_field=FORCE_FIELDS["ethanol_water.pdb"], **kwargs)


#: The system part of the demo config: what a config must give (the rest has schema defaults).
DEMO_SYSTEM = {"structure": "data/demo/ethanol_water.pdb", "force_field": DEMO_FORCE_FIELD, "qm_selection": "resname ETH"}


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


def sampler_with(name: str, **keys):
    """Settings of the sampler ``sampling.<name>`` with ``keys`` (schema defaults otherwise)."""
    return getattr(settings_with(sampling={name: keys}).sampling, name)


def rigid_waters(system):
    """(triples (M, 3) mlmm indices, lengths (M, 3) Å of the pairs (0,1), (0,2), (1,2)) of the MM
    waters the force field's OpenMM System keeps rigid (3-atom residues with 3 constraints)."""
    import numpy as np
    import openmm.unit as unit

    lengths = {}
    omm = system.mm.system
    for k in range(omm.getNumConstraints()):
        a, b, d = omm.getConstraintParameters(k)
        lengths[(min(a, b), max(a, b))] = d.value_in_unit(unit.angstrom)
    position = np.empty(len(system.original_index), int)
    position[system.original_index] = np.arange(len(system.original_index))
    triples, values = [], []
    for residue in system.mm.topology.residues():
        idx = sorted(a.index for a in residue.atoms())
        pairs = [(idx[0], idx[1]), (idx[0], idx[2]), (idx[1], idx[2])] if len(idx) == 3 else []
        if pairs and all(p in lengths for p in pairs):
            triples.append(position[idx])
            values.append([lengths[p] for p in pairs])
    return np.array(triples, int).reshape(-1, 3), np.array(values, float).reshape(-1, 3)
