"""Overview of an active-learning run for `snakemake --report`, built only from existing stage outputs.

Figure: ensemble force disagreement σ (eV/Å) seen by the walkers of every AL iteration against the
trust window. Table: one row per iteration (labels, test errors, selection). A JSON with the same
numbers goes into results/summary.json under "report". Production σ(t) is plotted by the
production analysis rule.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mlmm.al.selection import SelectionRecord  # noqa: E402
from mlmm.al.stages import WalkerStats  # noqa: E402
from mlmm.frames import atomic_write  # noqa: E402
from mlmm.labeling.reports import LabelReport  # noqa: E402
from mlmm.model.stages import EnsembleEvaluation  # noqa: E402
from mlmm.records import Record  # noqa: E402
from mlmm.settings import ALSettings  # noqa: E402

log = logging.getLogger("mlmm.report")

TABLE_COLUMNS = [
    "iteration", "labels", "failed_labels", "test_frames", "energy_mae_eV", "force_mae_qm_eV_per_A",
    "force_mae_mm_eV_per_A", "explored_frames", "sigma_mean_eV_per_A", "sigma_max_eV_per_A",
    "accurate", "candidate", "failed", "selected", "walker_ps_before_stop", "walkers_breached", "converged",
]


@dataclass
class ReportOverview(Record):
    """``report/overview.json`` (the summary's ``report``): the rows of the AL table (one per
    iteration, keys :data:`TABLE_COLUMNS`, None where an iteration has no value; errors in eV and
    eV/Å, σ in eV/Å, walker times in ps) and, per AL iteration, the number and the largest of the
    walker σ (eV/Å, None without frames) shown in the histogram."""

    al_table: list[dict[str, Any]]
    walker_sigma_counts: list[int]
    walker_sigma_max_eV_per_A: list[float | None]


def walker_sigmas(stats_files: Sequence[str | Path]) -> np.ndarray:
    """All per-frame σ (eV/Å) recorded by the walkers of one iteration (skipped walkers have none)."""
    values = [np.asarray(WalkerStats.from_json(path).sigmas, float) for path in stats_files]
    return np.concatenate(values) if values else np.zeros(0)


def al_table(label_reports: Sequence[str | Path], evaluations: Sequence[str | Path],
             selections: Sequence[str | Path]) -> list[dict]:
    """One row per iteration: label counts (report.json), test errors (ensemble.json), selection."""
    rows = []
    for it, (lab_path, ev_path) in enumerate(zip(label_reports, evaluations, strict=True)):
        lab, ev = LabelReport.from_json(lab_path), EnsembleEvaluation.from_json(ev_path)
        row: dict = {
            "iteration": it, "labels": lab.n_ok, "failed_labels": lab.n_failed,
            "test_frames": ev.n_test, "energy_mae_eV": ev.energy_mae,
            "force_mae_qm_eV_per_A": ev.force_mae_qm, "force_mae_mm_eV_per_A": ev.force_mae_mm,
        }
        if it >= 1:
            sel = SelectionRecord.from_json(selections[it - 1])
            walkers = sel.walkers or []
            row.update({
                "explored_frames": sel.n_explored, "sigma_mean_eV_per_A": sel.sigma_mean,
                "sigma_max_eV_per_A": sel.sigma_max, "accurate": sel.accurate,
                "candidate": sel.candidate, "failed": sel.failed,
                "selected": sel.n_selected, "converged": sel.converged,
                "walker_ps_before_stop": "/".join(f"{w['time_ps']:.3f}" for w in walkers if w.get("time_ps") is not None),
                "walkers_breached": sum(bool(w.get("stop_reason")) for w in walkers),
            })
        rows.append({col: row.get(col) for col in TABLE_COLUMNS})
    return rows


def plot_sigma_histograms(sigmas: Sequence[np.ndarray], al: ALSettings, out: str | Path) -> None:
    """Histogram of walker σ per AL iteration with sigma_lo / sigma_hi / sigma_stop marked."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    finite = [s[np.isfinite(s)] for s in sigmas]
    top = max([al.sigma_stop * 1.2] + [float(s.max()) for s in finite if s.size])
    bins = np.linspace(0.0, top, 40)
    for it, s in enumerate(finite, start=1):
        if s.size:
            ax.hist(s, bins=bins, histtype="step", lw=1.8, label=f"iteration {it} ({s.size} frames)")
    for key, style in (("sigma_lo", ":"), ("sigma_hi", "--"), ("sigma_stop", "-")):
        ax.axvline(getattr(al, key), color="k", ls=style, lw=1, label=f"{key} = {getattr(al, key):g} eV/Å")
    ax.set_xlabel("ensemble force σ (eV/Å)")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def write_table(rows: list[dict], out: str | Path) -> None:
    """CSV table (empty cells where an iteration has no value, e.g. selection of iteration 0)."""

    def writer(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS)
            w.writeheader()
            w.writerows([{k: ("" if v is None else v) for k, v in row.items()} for row in rows])

    atomic_write(out, writer)


def overview(walker_stats: Sequence[Sequence[str | Path]], label_reports: Sequence[str | Path],
             evaluations: Sequence[str | Path], selections: Sequence[str | Path], al: ALSettings,
             sigma_png: str | Path, table_csv: str | Path, json_out: str | Path) -> None:
    """Stage `report_overview`: all overview figures/tables plus their numbers as JSON."""
    # σ as the selection compared it with the trust window (calibration map when al.calibrated_thresholds)
    maps = [SelectionRecord.from_json(path).sigma_map() for path in selections]
    sigmas = [np.asarray(m.apply(walker_sigmas(files))) for m, files in zip(maps, walker_stats, strict=True)]
    plot_sigma_histograms(sigmas, al, sigma_png)
    rows = al_table(label_reports, evaluations, selections)
    write_table(rows, table_csv)
    log.info("overview: %d AL iterations, %d walker frames", len(sigmas), sum(s.size for s in sigmas))
    ReportOverview(
        al_table=rows,
        walker_sigma_counts=[int(s.size) for s in sigmas],
        walker_sigma_max_eV_per_A=[float(s.max()) if s.size else None for s in sigmas],
    ).to_json(json_out)
