"""Seed replicas and run comparison (mlmm.report.spread), checked on the demo config."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from conftest import ROOT
from mlmm.config import load_config
from mlmm.report.spread import SEED_OFFSET, key_numbers, offset_seeds, spread, summary_differences
from mlmm.seeds import STREAMS, derive_seed


def _seeds(obj, path=""):
    """Every ``seed`` entry of a config by its path."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update({f"{path}.{k}": v} if k == "seed" else _seeds(v, f"{path}.{k}"))
        return out
    return {}


def test_offset_seeds_shifts_every_seed_and_nothing_else() -> None:
    config = load_config(ROOT / "config/config.yaml")  # with defaults: every sampler's seed
    shifted = offset_seeds(config, 3 * SEED_OFFSET)
    before, after = _seeds(config), _seeds(shifted)
    assert len(before) >= 10 and before.keys() == after.keys()  # 6 samplers, training, ablation, al, production, …
    assert all(after[k] == before[k] + 3 * SEED_OFFSET for k in before)
    blank = lambda c: yaml.safe_dump(offset_seeds(c, 0))  # noqa: E731
    assert blank(config) == blank(offset_seeds(shifted, -3 * SEED_OFFSET))  # the only change: seeds
    assert _seeds(config) == before  # the input is not modified


def test_replicas_never_share_a_derived_seed() -> None:
    """Every seed a demo run derives (10 AL iterations, 100 walkers/members/replicas, all streams)
    differs between replica 0 and replica 1."""
    config = load_config(ROOT / "config/config.yaml")

    def derived(cfg):
        bases = set(_seeds(cfg).values())
        return {derive_seed(b, stream=s, iteration=i, index=w)
                for b in bases for s in STREAMS for i in range(10) for w in range(100)}

    assert not derived(config) & derived(offset_seeds(config, SEED_OFFSET))


def test_summary_differences_ignore_wall_times_only() -> None:
    a = {"labels_total": 240, "sampling": {"xtb_md": {"n_frames": 40, "wall_s": 24.8}},
         "production": {"ms_per_step": 37.4, "nve": {"drift_eV_per_ps": -0.0134}}, "converged": False}
    b = {"labels_total": 240, "sampling": {"xtb_md": {"n_frames": 40, "wall_s": 30.1}},
         "production": {"ms_per_step": 41.0, "nve": {"drift_eV_per_ps": -0.0134}}, "converged": False}
    assert summary_differences(a, b) == (3, {})
    b["production"]["nve"]["drift_eV_per_ps"] = -0.0134000001
    assert set(summary_differences(a, b)[1]) == {".production.nve.drift_eV_per_ps"}
    b["production"]["nve"]["drift_eV_per_ps"] = -0.0134
    b["converged"] = True
    assert summary_differences(a, b)[1] == {"<non-numeric>": True}


def test_spread_statistics() -> None:
    runs = [{"x": 0.1, "y": None}, {"x": 0.2, "y": 3.0}, {"x": 0.6, "y": 5.0}]
    s = spread(runs)
    assert math.isclose(s["x"]["mean"], 0.3) and math.isclose(s["x"]["std"], math.sqrt(0.07))
    assert (s["x"]["min"], s["x"]["max"], s["x"]["n"]) == (0.1, 0.6, 3)
    assert s["y"]["n"] == 2 and math.isclose(s["y"]["std"], math.sqrt(2.0)) and s["y"]["values"][0] is None


def test_key_numbers_read_the_summary_layout() -> None:
    summary = {"labels_total": 240, "test_errors_final": {"n_test": 21, "force_mae_qm": 0.085},
               "test_errors_per_iteration": [{"force_mae_qm": 0.159}, {"force_mae_qm": 0.125}],
               "selection_per_iteration": [{"fraction_accurate": 0.0}, {"fraction_accurate": 0.37}],
               "production_stability": {"initial": {"first_sigma_exceeded_ps": [0.525]}}}
    k = key_numbers(summary)
    assert k["test QM-force MAE final (eV/Å)"] == 0.085 and k["test QM-force MAE it0 (eV/Å)"] == 0.159
    assert k["explored frames below sigma_lo, last iteration"] == 0.37
    assert k["production first breach, iteration-0 ensemble (ps)"] == 0.525
    assert k["NVE drift (eV/atom/ps)"] is None  # absent, not an error
    assert Path(ROOT / "tools/seed_spread.py").exists()
