"""Excited-state config section and DAG: defaults, cross-field rules, the chromophore dry run."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from conftest import ROOT, SNAKEMAKE, config_with, make_workdir
from mlmm.config import ConfigError, load_config


def test_excited_is_off_by_default_and_the_demo_turns_it_on():
    defaults = config_with()["excited"]
    assert defaults["activate"] is False
    assert defaults["dynamics"]["initial"] == "ground_state_md" and defaults["al"]["initial"] == "wigner"
    chromo = load_config(ROOT / "config" / "examples" / "chromophore.yaml")
    assert chromo["excited"]["activate"] is True
    assert chromo["excited"]["level"]["density_fit"] is False


@pytest.mark.parametrize(
    "section,match",
    [
        ({"td": {"n_states": 3, "window": 4}}, r"excited\.td\.window"),
        ({"level": {"density_fit": True}}, r"excited\.level\.density_fit"),
        ({"spectra": {"e_min": 9.0, "e_max": 3.0}}, r"excited\.spectra\.e_min"),
        ({"td": {"tracking": "nearest"}}, r"excited\.td\.tracking"),
        ({"dynamics": {"initial": "boltzmann"}}, r"excited\.dynamics\.initial"),
    ],
)
def test_bad_excited_settings_name_the_field(section, match):
    with pytest.raises(ConfigError, match=match):
        config_with(excited=section)


def test_chromophore_dry_run_has_the_excited_chain(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "examples" / "chromophore.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    work = make_workdir(tmp_path)  # never the checkout: a run made there would empty the DAG
    snakemake = [SNAKEMAKE, "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work)]
    proc = subprocess.run([*snakemake, "--configfile", str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rule in ("excited_labels", "excited_train_member", "excited_property_model", "excited_dynamics",
                 "excited_predict", "excited_reference", "spectra"):
        assert f"rule {rule}:" in proc.stdout
    assert "excited/spectra/summary.json" in proc.stdout
    demo = subprocess.run(snakemake, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0 and "rule explore:" in demo.stdout and "rule excited_labels:" not in demo.stdout


def test_absorption_needs_an_active_unbiased_sampler():
    with pytest.raises(ConfigError, match=r"excited\.absorption_samplers: none of \['wigner'\] is active"):
        config_with(excited={"activate": True, "absorption_samplers": ["wigner"]}, sampling={"wigner": {"activate": False}})
    with pytest.raises(ConfigError, match=r"excited\.absorption_samplers"):  # biased samplers are not allowed at all
        config_with(excited={"absorption_samplers": ["metadynamics"]})
