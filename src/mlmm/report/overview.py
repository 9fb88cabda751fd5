"""Overview of an active-learning run for `snakemake --report`, built only from existing stage outputs.

Figures: ensemble force disagreement σ (eV/Å) seen by the walkers of every AL iteration against the
trust window, and σ(t)/E(t) of production. Table: one row per iteration (labels, test errors,
selection). A JSON with the same numbers goes into results/summary.json under "report".
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mlmm.frames import atomic_write  # noqa: E402
from mlmm.jobs import read_json, write_json  # noqa: E402
from mlmm.logutil import setup_logging  # noqa: E402

log = logging.getLogger("mlmm.report")

TABLE_COLUMNS = [
    "iteration", "labels", "failed_labels", "test_frames", "energy_mae_eV", "force_mae_qm_eV_per_A",
    "force_mae_mm_eV_per_A", "explored_frames", "sigma_mean_eV_per_A", "sigma_max_eV_per_A",
    "accurate", "candidate", "failed", "selected", "converged",
]


def walker_sigmas(stats_files: Sequence[str | Path]) -> np.ndarray:
    """All per-frame σ (eV/Å) recorded by the walkers of one iteration (skipped walkers have none)."""
    values = [np.asarray(read_json(path).get("sigmas", []), float) for path in stats_files]
    return np.concatenate(values) if values else np.zeros(0)


def al_table(label_reports: Sequence[str | Path], evaluations: Sequence[str | Path],
             selections: Sequence[str | Path]) -> list[dict]:
    """One row per iteration: label counts (report.json), test errors (ensemble.json), selection."""
    rows = []
    for it, (lab_path, ev_path) in enumerate(zip(label_reports, evaluations, strict=True)):
        lab, ev = read_json(lab_path), read_json(ev_path)
        row: dict = {
            "iteration": it, "labels": lab.get("n_ok"), "failed_labels": lab.get("n_failed"),
            "test_frames": ev.get("n_test"), "energy_mae_eV": ev.get("energy_mae"),
            "force_mae_qm_eV_per_A": ev.get("force_mae_qm"), "force_mae_mm_eV_per_A": ev.get("force_mae_mm"),
        }
        if it >= 1:
            sel = read_json(selections[it - 1])
            row.update({
                "explored_frames": sel.get("n_explored"), "sigma_mean_eV_per_A": sel.get("sigma_mean"),
                "sigma_max_eV_per_A": sel.get("sigma_max"), "accurate": sel.get("accurate"),
                "candidate": sel.get("candidate"), "failed": sel.get("failed"),
                "selected": sel.get("n_selected"), "converged": sel.get("converged"),
            })
        rows.append({col: row.get(col) for col in TABLE_COLUMNS})
    return rows


def plot_sigma_histograms(sigmas: Sequence[np.ndarray], al_cfg: dict, out: str | Path) -> None:
    """Histogram of walker σ per AL iteration with sigma_lo / sigma_hi / sigma_stop marked."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    finite = [s[np.isfinite(s)] for s in sigmas]
    top = max([al_cfg["sigma_stop"] * 1.2] + [float(s.max()) for s in finite if s.size])
    bins = np.linspace(0.0, top, 40)
    for it, s in enumerate(finite, start=1):
        if s.size:
            ax.hist(s, bins=bins, histtype="step", lw=1.8, label=f"iteration {it} ({s.size} frames)")
    for key, style in (("sigma_lo", ":"), ("sigma_hi", "--"), ("sigma_stop", "-")):
        ax.axvline(al_cfg[key], color="k", ls=style, lw=1, label=f"{key} = {al_cfg[key]:g} eV/Å")
    ax.set_xlabel("ensemble force σ (eV/Å)")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def plot_production(sigma_csv: str | Path, prod_cfg: dict, out: str | Path) -> dict:
    """σ(t) and potential energy E(t) of production; returns σ statistics (eV/Å)."""
    data = np.genfromtxt(sigma_csv, delimiter=",", names=True, ndmin=1)
    t_ps = np.atleast_1d(data["time_fs"]) / 1000.0
    sigma = np.atleast_1d(data["sigma_force_eV_per_A"])
    energy = np.atleast_1d(data["potential_energy_eV"])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.4, 5.0), sharex=True)
    marker = "o" if sigma.size < 50 else None  # short (e.g. stopped) runs: show every sample
    ax1.plot(t_ps, sigma, lw=1, marker=marker, ms=3)
    ax1.axhline(prod_cfg["sigma_stop"], color="k", ls="-", lw=1, label=f"sigma_stop = {prod_cfg['sigma_stop']:g} eV/Å")
    ax1.set_ylabel("force σ (eV/Å)")
    ax1.legend(fontsize=8)
    ax2.plot(t_ps, energy - energy[0] if energy.size else energy, lw=1, marker=marker, ms=3)
    ax2.set_ylabel("E_pot − E_pot(0) (eV)")
    ax2.set_xlabel("time (ps)")
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    if sigma.size == 0:
        return {"frames": 0, "sigma_mean": None, "sigma_max": None}
    return {"frames": int(sigma.size), "sigma_mean": float(sigma.mean()), "sigma_max": float(sigma.max())}


def write_table(rows: list[dict], out: str | Path) -> None:
    """CSV table (empty cells where an iteration has no value, e.g. selection of iteration 0)."""

    def writer(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS)
            w.writeheader()
            w.writerows([{k: ("" if v is None else v) for k, v in row.items()} for row in rows])

    atomic_write(out, writer)


def overview(walker_stats: Sequence[Sequence[str | Path]], label_reports: Sequence[str | Path],
             evaluations: Sequence[str | Path], selections: Sequence[str | Path], production_sigma: str | Path,
             al_cfg: dict, production_cfg: dict, sigma_png: str | Path, table_csv: str | Path,
             production_png: str | Path, json_out: str | Path, log_path: str | Path | None = None) -> None:
    """Stage `report_overview`: all overview figures/tables plus their numbers as JSON."""
    setup_logging(log_path)
    sigmas = [walker_sigmas(files) for files in walker_stats]
    plot_sigma_histograms(sigmas, al_cfg, sigma_png)
    rows = al_table(label_reports, evaluations, selections)
    write_table(rows, table_csv)
    prod = plot_production(production_sigma, production_cfg, production_png)
    log.info("overview: %d AL iterations, %d production σ samples", len(sigmas), prod["frames"])
    write_json(json_out, {
        "al_table": rows,
        "walker_sigma_counts": [int(s.size) for s in sigmas],
        "production_sigma": prod,
    })
