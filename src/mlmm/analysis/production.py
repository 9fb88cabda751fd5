"""Production analysis: solvent RDF around the QM region, CV distances, σ(t), NVE energy.

Reads the replica folders written by :func:`mlmm.dynamics.stages.production` (DCD + PDB
topology + time-series CSV + stats.json) with MDAnalysis; distances in Å, times in ps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlmm.dynamics.stages import NVEStats, ProductionStats, ran_without_breach, read_timeseries
from mlmm.records import Record, nested
from mlmm.settings import CVDistance, ProductionSettings, SystemSettings

log = logging.getLogger(__name__)


@dataclass
class ProductionAnalysis(Record):
    """``production/analysis.json`` (the summary's ``production``): the final-ensemble NVT replicas
    and the NVE check (None when not configured), replica totals (length in ps, largest ensemble
    force σ in eV/Å, mean cost in ms per MD step), the RDF summary of :func:`solvent_rdf` without its
    curve (first-shell peak and minimum in Å, coordination number, ``reference`` selection), the
    CV summaries of :func:`cv_series` without the per-replica series (mean and std in Å, frame
    spacing in ps) and the paths of the replicas' trajectories and topology."""

    replicas: list[ProductionStats] = nested(ProductionStats)
    replicas_completed_without_breach: int
    total_length_ps: float
    sigma_max: float | None
    ms_per_step: float
    nve: NVEStats | None = nested(NVEStats)
    rdf: dict[str, Any]
    cv_distances: dict[str, dict[str, Any]]
    trajectories: list[str]
    topology: str | None


def replica_universe(replica_dir: Path):
    """MDAnalysis Universe of one replica's topology.pdb + trajectory.dcd, with elements (guessed
    as in system preparation where the structure had no element column)."""
    import MDAnalysis as mda

    from mlmm.system import guess_elements

    universe = mda.Universe(str(replica_dir / "topology.pdb"), str(replica_dir / "trajectory.dcd"))
    guess_elements(universe)
    return universe


def _select(universe, selection: str, what: str):
    group = universe.select_atoms(selection)
    if group.n_atoms == 0:
        raise ValueError(f"production.{what}: selection {selection!r} matches no atom")
    return group


def first_minimum_after(g: np.ndarray, start: int) -> int:
    """Index of the first local minimum of ``g`` after ``start`` (the last bin if none)."""
    for i in range(start + 1, len(g) - 1):
        if g[i] < g[i - 1] and g[i] <= g[i + 1]:
            return i
    return len(g) - 1


def first_shell_peak(g: np.ndarray) -> int:
    """Index of the first solvation-shell maximum: the first local maximum with g ≥ 1 (above
    bulk density), or the global maximum if g never peaks above 1."""
    for i in range(1, len(g) - 1):
        if g[i] >= 1.0 and g[i] >= g[i - 1] and g[i] > g[i + 1]:
            return i
    return int(np.argmax(g))


def solvent_rdf(universes: Sequence[Any], reference_selection: str, solvent_selection: str, r_max_ang: float, n_bins: int = 80) -> dict[str, Any]:
    """g(r) of solvent atoms around the reference atoms, averaged over frames of all replicas (one
    Universe each, see :func:`replica_universe`).

    Returns bin centres (Å), g(r), the first-shell maximum (Å) and the running coordination
    number at the first minimum after it.
    """
    from MDAnalysis.analysis.rdf import InterRDF

    counts = None
    n_frames = 0
    for u in universes:
        if u.trajectory.n_frames == 0:
            continue
        ref = _select(u, reference_selection, "rdf_reference")
        solvent = _select(u, solvent_selection, "rdf_solvent")
        rdf = InterRDF(ref, solvent, nbins=n_bins, range=(0.0, r_max_ang)).run()
        weight = u.trajectory.n_frames
        counts = rdf.results.rdf * weight if counts is None else counts + rdf.results.rdf * weight
        n_frames += weight
        bins = rdf.results.bins
        density = solvent.n_atoms / u.trajectory.ts.volume
    if counts is None:
        return {"r_ang": [], "g": [], "n_frames": 0}
    g = counts / n_frames
    peak = first_shell_peak(g)
    after = first_minimum_after(g, peak)
    dr = bins[1] - bins[0]
    shell = 4.0 * np.pi * bins**2 * dr * density * g
    return {
        "r_ang": bins.tolist(),
        "g": g.tolist(),
        "n_frames": n_frames,
        "first_peak_ang": float(bins[peak]),
        "first_minimum_ang": float(bins[after]),
        "coordination_number": float(shell[: after + 1].sum()),
    }


def cv_series(universes: Sequence[Any], cvs: Sequence[CVDistance], frame_dt_ps: float) -> dict[str, Any]:
    """Centre-of-geometry distances (Å, minimum image) per replica (one Universe each) and frame."""
    from MDAnalysis.lib.distances import calc_bonds

    out: dict[str, Any] = {}
    for cv in cvs:
        series = []
        for u in universes:
            a = _select(u, cv.selection1, f"cv_distances[{cv.name}].selection1")
            b = _select(u, cv.selection2, f"cv_distances[{cv.name}].selection2")
            values = [float(calc_bonds(a.center_of_geometry(), b.center_of_geometry(), box=ts.dimensions)) for ts in u.trajectory]
            series.append(values)
        flat = np.concatenate([np.asarray(s) for s in series]) if series else np.zeros(0)
        out[cv.name] = {
            "per_replica": series,
            "mean_ang": float(flat.mean()) if flat.size else None,
            "std_ang": float(flat.std()) if flat.size else None,
            "frame_dt_ps": frame_dt_ps,
        }
    return out


def _plot_sigma(runs: dict[str, list[tuple[Path, ProductionStats]]], sigma_stop: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    styles = {"final": "-", "initial": "--"}
    for model, entries in runs.items():
        for d, stats in entries:
            ts = read_timeseries(str(d / "timeseries.csv"))
            ax.plot(ts["time_fs"] / 1000.0, ts["sigma_force_eV_per_A"], styles[model], lw=1,
                    label=f"{model} ensemble, replica {stats.replica}")
    ax.axhline(sigma_stop, color="k", lw=0.8, ls=":", label="sigma_stop")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("ensemble force σ (eV/Å)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_rdf(rdf: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    if rdf["n_frames"]:
        ax.plot(rdf["r_ang"], rdf["g"])
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_title(f"solvent around {rdf.get('reference', '')}, {rdf['n_frames']} frames", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_energy(nve_dir: Path | None, nve: NVEStats | None, final: list[tuple[Path, ProductionStats]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ts = read_timeseries(str(nve_dir / "timeseries.csv")) if nve_dir is not None else None
    if ts is not None and len(ts["time_fs"]) < 2:
        ax.text(0.5, 0.5, f"NVE check run has no data: {nve.stop_reason}", ha="center", va="center", wrap=True, fontsize=8)
        ax.set_title("NVE check run, final ensemble")
    elif ts is not None:
        t = ts["time_fs"] / 1000.0
        e0 = ts["total_energy_eV"][0]
        ax.plot(t, ts["total_energy_eV"] - e0, label="total")
        ax.plot(t, ts["potential_energy_eV"] - ts["potential_energy_eV"][0], lw=0.8, label="potential")
        ax.plot(t, nve.drift_eV_per_ps * (t - t[0]), "k:", label=f"drift {nve.drift_eV_per_atom_per_ps:.2e} eV/atom/ps")
        ax.set_title("NVE check run, final ensemble")
    else:
        for d, stats in final:
            ts = read_timeseries(str(d / "timeseries.csv"))
            ax.plot(ts["time_fs"] / 1000.0, ts["potential_energy_eV"], lw=1, label=f"replica {stats.replica} potential")
        ax.set_title("NVT replicas (no NVE check configured)")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("energy change (eV)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_cvs(cvs: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(cvs), 1)
    fig, axes = plt.subplots(n, 2, figsize=(8, 2.6 * n), squeeze=False, gridspec_kw={"width_ratios": [3, 1]})
    if not cvs:
        axes[0, 0].text(0.5, 0.5, "no production.cv_distances configured", ha="center", va="center")
        axes[0, 1].axis("off")
    for row, (name, data) in zip(axes, cvs.items()):
        for r, values in enumerate(data["per_replica"]):
            t = np.arange(1, len(values) + 1) * data["frame_dt_ps"]
            row[0].plot(t, values, lw=0.8, label=f"replica {r}")
            row[1].hist(values, bins=20, orientation="horizontal", histtype="step")
        row[0].set_xlabel("time (ps)")
        row[0].set_ylabel(f"{name} (Å)")
        row[1].set_xlabel("count")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def analyse(
    structure: str,
    final_stats: Sequence[str],
    initial_stats: Sequence[str],
    nve_stats: Sequence[str],
    production: ProductionSettings,
    system: SystemSettings,
    analysis_out: str,
    rdf_png: str,
    sigma_png: str,
    energy_png: str,
    cvs_png: str,
) -> None:
    """All production analyses, their plots and one JSON record (also the summary's ``production``)."""
    final = [(Path(p).parent, ProductionStats.from_json(p)) for p in final_stats]
    initial = [(Path(p).parent, ProductionStats.from_json(p)) for p in initial_stats]
    nve = NVEStats.from_json(nve_stats[0]) if nve_stats else None
    dirs = [d for d, _ in final]
    reference = production.rdf_reference or f"({system.qm_selection}) and not element H"
    universes = [replica_universe(d) for d in dirs]  # read once, used by the RDF and the CVs
    rdf = solvent_rdf(universes, reference, production.rdf_solvent, production.rdf_range)
    rdf["reference"] = reference
    cvs = cv_series(universes, production.cv_distances, production.stride * production.timestep / 1000.0)
    _plot_rdf(rdf, rdf_png)
    _plot_sigma({"final": final, "initial": initial}, production.sigma_stop, sigma_png)
    _plot_energy(Path(nve_stats[0]).parent if nve_stats else None, nve, final, energy_png)
    _plot_cvs(cvs, cvs_png)
    replicas = [stats for _, stats in final]
    analysis = ProductionAnalysis(
        replicas=replicas,
        replicas_completed_without_breach=sum(ran_without_breach(s) for s in replicas),
        total_length_ps=float(sum(s.length_ps for s in replicas)),
        sigma_max=max((s.sigma_max for s in replicas if s.sigma_max is not None), default=None),
        ms_per_step=float(np.mean([s.ms_per_step for s in replicas])),
        nve=nve,
        rdf={k: v for k, v in rdf.items() if k not in ("r_ang", "g")},
        cv_distances={k: {kk: vv for kk, vv in v.items() if kk != "per_replica"} for k, v in cvs.items()},
        trajectories=[str(d / "trajectory.dcd") for d in dirs],
        topology=str(dirs[0] / "topology.pdb") if dirs else None,
    )
    log.info("production analysis: %s", analysis.to_dict())
    analysis.to_json(analysis_out)
