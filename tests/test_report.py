"""The overview stage of `snakemake --report`: AL table and σ histograms from stage outputs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from conftest import settings_with
from mlmm.al.selection import SelectionRecord
from mlmm.al.stages import WalkerStats
from mlmm.labeling.reports import LabelReport
from mlmm.model.stages import EnsembleEvaluation
from mlmm.records import Record
from mlmm.report.overview import TABLE_COLUMNS, ReportOverview, overview

AL = settings_with(al={"sigma_lo": 0.05, "sigma_hi": 0.5, "sigma_stop": 1.0}).al


def _json(path: Path, record: Record) -> str:
    record.to_json(path)
    return str(path)


def test_overview_table_figures_and_numbers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # iteration 1: two walkers, one skipped-like (no σ); iteration 2: one walker
    walkers = [
        [_json(tmp_path / "w10.json", WalkerStats(skipped=False, sigmas=list(rng.uniform(0.01, 0.6, 30)))),
         _json(tmp_path / "w11.json", WalkerStats(skipped=True, converged_at=0))],
        [_json(tmp_path / "w20.json", WalkerStats(skipped=False, sigmas=list(rng.uniform(0.0, 0.04, 12))))],
    ]
    reports = [_json(tmp_path / f"r{i}.json", LabelReport(n_frames=16, n_ok=16 - i, n_failed=i)) for i in range(3)]
    evals = [_json(tmp_path / f"e{i}.json", EnsembleEvaluation(n_test=3, energy_mae=0.1 / (i + 1), force_mae_qm=0.2,
                                                               force_mae_mm=0.02)) for i in range(3)]
    sels = [
        _json(tmp_path / "s1.json", SelectionRecord(
            iteration=1, n_explored=30, sigma_scale=1.0, sigma_mean=0.3, sigma_max=0.6, accurate=2, candidate=25,
            failed=3, n_selected=4, converged=False, converged_at=None, reason="selected",
            walkers=[{"time_ps": 0.02, "stop_reason": "sigma breach"}, {"time_ps": 0.25, "stop_reason": None}])),
        _json(tmp_path / "s2.json", SelectionRecord(
            iteration=2, n_explored=12, sigma_mean=0.02, sigma_max=0.04, accurate=12, candidate=0, failed=0,
            n_selected=0, converged=True, converged_at=2, reason="converged", sigma_scale=2.0,
            map_sigma=[0.0, 0.02, 0.04], map_error=[0.0, 0.01, 0.1])),
    ]
    out = tmp_path / "out"
    out.mkdir()
    overview(walkers, reports, evals, sels, AL, out / "sigma.png", out / "table.csv", out / "overview.json")

    assert (out / "sigma.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "table.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == TABLE_COLUMNS
    assert [r["labels"] for r in rows] == ["16", "15", "14"]
    assert rows[0]["selected"] == "" and rows[1]["selected"] == "4" and rows[2]["converged"] == "True"
    assert rows[1]["walker_ps_before_stop"] == "0.020/0.250" and rows[1]["walkers_breached"] == "1"
    data = ReportOverview.from_json(out / "overview.json")
    assert data.walker_sigma_counts == [30, 12] and [r["labels"] for r in data.al_table] == [16, 15, 14]
    # iteration 2's selection compared σ after its calibration map (knots below 0.04 eV/Å): so does the histogram
    assert np.isclose(data.walker_sigma_max_eV_per_A[0], max(WalkerStats.from_json(tmp_path / "w10.json").sigmas))
    raw_max = max(WalkerStats.from_json(tmp_path / "w20.json").sigmas)
    assert np.isclose(data.walker_sigma_max_eV_per_A[1], np.interp(raw_max, [0.0, 0.02, 0.04], [0.0, 0.01, 0.1]))
