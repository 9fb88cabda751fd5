"""Per-rule conda envs (envs/*.yaml) agree with what CI tests in its pip environment."""

from __future__ import annotations

import re

import yaml

from conftest import ROOT

ENVS = sorted((ROOT / "envs").glob("*.yaml"))


def _ci_pins() -> dict[str, str]:
    """Exact versions CI installs: `==` pins of pyproject.toml and tools/install.sh."""
    text = (ROOT / "pyproject.toml").read_text() + (ROOT / "tools" / "install.sh").read_text()
    return {name.lower(): version for name, version in re.findall(r"([A-Za-z][\w.-]*)==([\w.]+)", text)}


def _env_specs(path) -> dict[str, str]:
    """Package -> version spec ('' when unpinned) of one env file, conda and pip sections."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    flat = [d for d in deps if isinstance(d, str)]
    flat += [p for d in deps if isinstance(d, dict) for p in d.get("pip", []) if not p.startswith("-")]
    specs = {}
    for dep in flat:
        name, spec = re.match(r"([A-Za-z][\w.-]*)\s*(.*)", dep).groups()
        specs[name.lower()] = spec.strip()
    return specs


def test_every_rule_env_exists_and_every_env_is_used() -> None:
    rules = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    used = set(re.findall(r'f"\{ENVS\}/(\w+\.yaml)"', rules))
    assert used == {p.name for p in ENVS}


def test_env_versions_match_ci() -> None:
    pins = _ci_pins()
    assert {"torch", "schnetpack", "pyscf"} <= set(pins), pins
    for path in ENVS:
        specs = _env_specs(path)
        assert specs["python"] == "=3.12", path.name  # schnetpack 2.2.0 declares Python >= 3.12
        for name, version in pins.items():
            if name in specs:
                assert specs[name] in (f"=={version}", f"={version}"), (path.name, name, specs[name], version)


def test_envs_cover_their_rule_groups() -> None:
    """The engines each rule group calls are in its env (module names as conda/pip spell them)."""
    needs = {
        "sampling.yaml": {"ase", "tblite-python", "numpy", "scipy", "openmm", "mdanalysis", "torch"},  # torch: embedding weights
        "labeling.yaml": {"pyscf", "ase", "numpy", "schnetpack", "torch"},
        "training.yaml": {"schnetpack", "torch", "ase", "numpy", "scipy", "matplotlib"},
        "md.yaml": {"schnetpack", "torch", "ase", "numpy", "scipy", "openmm", "mdanalysis", "matplotlib"},
    }
    for path in ENVS:
        missing = needs[path.name] - set(_env_specs(path))
        assert not missing, (path.name, missing)
