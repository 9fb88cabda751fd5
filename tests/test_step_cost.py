"""The step-cost benchmark runs in --quick mode and reports consistent timings."""

from __future__ import annotations

import importlib.util
import json

from conftest import ROOT


def test_step_cost_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("step_cost", ROOT / "benchmarks" / "step_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "step_cost.json"
    result = module.main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    ms = result["ms_per_call"]
    for key in ("mlpmm_step", "ensemble", "single_member", "mm_forcefield", "tblite_vacuum", "pyscf_hf"):
        assert ms[key] > 0
    assert result["ratio_to_ensemble"]["pyscf_hf"] == ms["pyscf_hf"] / ms["ensemble"]
    assert result["n_qm"] == 9 and result["n_atoms_frame"][0] < result["n_atoms_full"]
