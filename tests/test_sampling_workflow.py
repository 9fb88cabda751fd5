"""Sampling rules in the workflow: the demo DAG shows every sampler; a tiny run of all of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, make_workdir, run_snakemake
from mlmm.frames import read_frames

SAMPLERS = ["xtb_md", "metadynamics", "normal_modes", "wigner", "pca"]


def test_demo_dry_run_shows_samplers(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    out = run_snakemake(work, "-n").stdout
    for s in SAMPLERS:
        assert f"results/sampling/{s}/frames.extxyz" in out
    assert "results/sampling/metadynamics/HILLS" in out and "results/sampling/adaptive" not in out
    demo = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["sampling"]
    assert 80 <= sum(v["n_frames"] for v in demo.values() if v.get("activate", False)) <= 100
    switch = str(ROOT / "config" / "examples" / "sampling_adaptive.yaml")
    out = run_snakemake(work, "-n", "--configfile", "config/config.yaml", switch).stdout
    assert "results/sampling/adaptive/frames.extxyz" in out


@pytest.mark.workflow
def test_all_samplers_tiny(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    s = config["sampling"]
    s["xtb_md"].update(n_frames=6, stride=5, equilibration_steps=10)
    s["metadynamics"].update(n_frames=3, stride=10, equilibration_steps=10)
    s["normal_modes"].update(n_frames=2)
    s["wigner"].update(n_frames=2, temperature=0.0)
    s["pca"].update(n_frames=3, n_components=2)
    s["adaptive"].update(activate=True, n_frames=3, steps=10, stride=5, max_rounds=2)
    work = make_workdir(tmp_path, config)
    run_snakemake(work, "-c1", "results/sampling/frames.extxyz", "results/sampling/summary.json")
    res = work / "results" / "sampling"
    expected = {"xtb_md": 6, "metadynamics": 3, "normal_modes": 2, "wigner": 2, "pca": 3, "adaptive": 3}
    frames = read_frames(res / "frames.extxyz")
    assert len(frames) == sum(expected.values())
    for name, n in expected.items():
        stats = json.loads((res / name / "stats.json").read_text())
        assert stats["n_frames"] == n and stats["wall_s"] > 0
        assert sum(f.info["sampler"] == name for f in frames) == n
    for png in ("metadynamics/fes.png", "normal_modes/energies.png", "wigner/energies.png", "pca/projection.png",
                "adaptive/coverage.png"):
        assert (res / png).stat().st_size > 1000
    assert all(f.get_momenta()[:9].any() for f in frames if f.info["sampler"] == "wigner")
    summary = json.loads((res / "summary.json").read_text())
    assert summary["n_frames"] == len(frames) and set(summary["samplers"]) == set(expected)
