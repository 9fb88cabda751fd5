"""Smoke tests: every benchmark's --quick mode runs and writes valid JSON; step_cost also checks its
systems (atom counts, PME) and that an MD step with the QM term costs more than the force field alone."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
from pathlib import Path

import numpy as np
import openmm.app as app
import openmm.unit as unit
import pytest

from conftest import ROOT


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finished_run_dir(marker: str) -> Path | None:
    """$MLMM_BENCH_RUN_DIR (a finished run, e.g. a demo run elsewhere) if it holds ``marker``, else None.

    Never this checkout: a test must not read or depend on a run made in the source tree.
    """
    cand = os.environ.get("MLMM_BENCH_RUN_DIR")
    if cand and (Path(cand) / "config" / "config.yaml").exists() and (Path(cand) / marker).exists():
        return Path(cand)
    return None


def test_step_cost_quick(tmp_path):
    out = tmp_path / "step_cost.json"
    result = _load("step_cost").main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    demo, at = result["systems"]["demo"], result["systems"]["at_pair"]
    for key in ("mlpmm_step", "ensemble", "single_member", "mm_forcefield", "cut_frame", "tblite_vacuum", "pyscf_hf/sto-3g",
                "committee_8", "ensemble_one_by_one", "single_member_one_by_one", "md_term"):
        assert demo["ms_per_call"][key] > 0
    ratios = demo["committee_ratios"]
    assert ratios["committee_8_over_single_member"] == demo["ms_per_call"]["committee_8"] / demo["ms_per_call"]["single_member"]
    assert result["targets_step"]["demo_mlpmm_md_step_ms"]["value"] == demo["md_ms_per_step"]["mlpmm"]
    assert demo["ratio_to_ensemble"]["pyscf_hf/sto-3g"] == demo["ms_per_call"]["pyscf_hf/sto-3g"] / demo["ms_per_call"]["ensemble"]
    assert demo["n_qm"] == 9 and demo["n_atoms_frame"][0] < demo["n_atoms_full"]
    # the ~30-atom benchmark system: A–T pair with ≈600 MM point charges in the members' (demo) 8 Å embedding
    assert at["n_qm"] == 30 and 450 <= at["n_mm_charges"][0] <= 750
    assert at["profile"] and at["profile"][0]["cum_ms_per_step"] > 0
    # the ≥ 5000-atom PME box, built by OpenMM's Modeller next to the JSON
    box = result["systems"]["box5k"]
    pdb = app.PDBFile(str(tmp_path / "box5k_ethanol_water.pdb"))
    assert box["n_atoms_full"] == pdb.topology.getNumAtoms() >= 5000 and box["n_qm"] == 9
    assert np.allclose(pdb.topology.getPeriodicBoxVectors().value_in_unit(unit.angstrom), 38.0 * np.eye(3), atol=1e-3)
    for name, sec in result["systems"].items():
        md = sec["md_ms_per_step"]
        assert sec["nonbonded_method"] == "PME", name
        # an MLP/MM MD step is the force-field step plus a committee call through the QM PythonForce
        assert md["mlpmm"] > md["mm_only"] > 0 and md["xtbmm"] > 0, (name, md)
        assert md["mlpmm_frame_cut"] > md["mm_only"], (name, md)
        assert sec["md_ratios"]["mlpmm_over_xtbmm"] == md["mlpmm"] / md["xtbmm"]
        assert sec["md_ratios"]["mlpmm_over_ensemble"] == md["mlpmm"] / sec["ms_per_call"]["ensemble"]


def test_embedding_truncation_quick(tmp_path):
    out = tmp_path / "et.json"
    result = _load("embedding_truncation").main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert abs(result["left_out_charge_e"]) < 1e-9  # whole neutral waters are left out (in part or whole)
    assert result["n_molecules_switched"] > 0 and result["n_molecules_embedded"] < result["n_molecules_box"]
    assert result["potential_at_qm_v"]["spread"] > 0


def test_workflow_overhead_quick(tmp_path):
    out = tmp_path / "wo.json"
    run = _finished_run_dir("results/benchmarks")
    result = _load("workflow_overhead").main(["--quick", "--out", str(out)] + (["--run-dir", str(run)] if run else []))
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    # the fresh demo DAG is planned in a temporary directory: a finished run here changes nothing
    assert result["dry_run"]["jobs"] > 10 and result["dry_run"]["wall_s"] > 0
    assert not result["dry_run"]["workdir"].startswith(str(ROOT))


def test_stability_quick(tmp_path):
    run = _finished_run_dir("results/production/stability.json")
    if run is None:
        pytest.skip("stability reads a finished run (no results/production/stability.json; set MLMM_BENCH_RUN_DIR)")
    out = tmp_path / "stab.json"
    result = _load("stability").main(["--quick", "--results", str(run / "results"), "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert {"initial", "final"} <= set(result["production"])



def test_label_efficiency_quick(tmp_path):
    from mlmm.labeling.db import iter_label_rows

    run = _finished_run_dir("results/labels/it1/labels.db")
    if run is None:
        pytest.skip("label efficiency trains on a finished run's labels (no results/labels/it1; set MLMM_BENCH_RUN_DIR)")
    samplers = [meta.get("sampler") for _, _, meta in iter_label_rows(run / "results/labels/it0/labels.db")]
    if samplers.count("xtb_md") < 20:
        pytest.skip(f"label efficiency needs ≥ 20 xtb_md labels in iteration 0; {run} has {samplers.count('xtb_md')}")
    out = tmp_path / "le.json"
    result = _load("label_efficiency").main(["--quick", "--run-dir", str(run), "--workdir", str(tmp_path / "w"), "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert [r["n_labels"] for r in result["arms"]["md"]] == [10, 20]
    assert result["arms"]["metad"] == [] or result["arms"]["metad"][0]["n_labels"] == 10
    assert all(r["force_mae_qm"] > 0 for arm in result["arms"].values() for r in arm)
    if (run / "results/test_set/labels.db").exists():  # scored on the run's fixed test set
        assert result["test_set"]["db"] == str(run / "results/test_set/labels.db")


def test_committees_are_distinct_subsets_of_the_members():
    module = _load("committee_size")
    assert module.committees(6, 2, 100) == list(itertools.combinations(range(6), 2))
    picked = module.committees(6, 3, 5)
    assert len(picked) == len(set(picked)) == 5 and all(len(set(c)) == 3 and max(c) < 6 for c in picked)
    assert module.mean_std([0.5, None, 0.7]) == pytest.approx((0.6, np.std([0.5, 0.7], ddof=1)))


def test_committee_size_quick(tmp_path):
    """Committees of 2 and 3 out of 3 quick members: every committee of a size is scored (3 and 1),
    with the workflow's calibration (ρ in [-1, 1], coverage in [0, 1]) and a positive MAE."""
    run = _finished_run_dir("results/test_set/labels.db")
    if run is None:
        pytest.skip("committee size trains on a finished run's labels (no results/test_set; set MLMM_BENCH_RUN_DIR)")
    module = _load("committee_size")
    out = tmp_path / "cs.json"
    result = module.main(["--quick", "--run-dir", str(run), "--workdir", str(tmp_path / "w"), "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert [(r["n_members"], r["n_committees"]) for r in result["sizes"]] == [(2, 3), (3, 1)]
    for r in result["sizes"]:
        assert -1 <= r["spearman_rho"] <= 1 and 0 <= r["coverage_oof"] <= 1 and r["force_mae_qm"] > 0
