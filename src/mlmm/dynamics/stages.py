"""Stage functions of the production rules: NVT replicas, the NVE energy check, the stability
comparison of the initial and final ensembles."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlmm.dynamics.md import CheckpointSpec
from mlmm.frames import atomic_write, write_frames
from mlmm.jobs import system_from_config
from mlmm.records import Record, nested, optional
from mlmm.seeds import derive_seed
from mlmm.settings import ProductionSettings, SystemSettings

log = logging.getLogger(__name__)


@dataclass
class ProductionStats(Record):
    """``production/{model}/replica{r}/stats.json``: one NVT MLP/MM replica (σ eV/Å, times ps)."""

    model: str
    models: list[str]
    replica: int
    seed: int
    ensemble: str
    temperature_K: float
    steps_requested: int
    steps_done: int
    length_ps: float
    completed: bool
    stop_reason: str | None
    sigma_action: str
    sigma_stop: float
    n_sigma_exceeded: int
    first_sigma_exceeded_ps: float | None
    n_handed_back: int
    sigma_max: float | None
    sigma_mean: float | None
    temperature_mean_K: float | None
    n_frames: int
    ms_per_step: float | None


@dataclass
class NVEStats(Record):
    """``production/nve/stats.json``: the NVE check; the drift keys (see :func:`energy_drift`) are
    absent when fewer than two steps were saved or the NVT equilibration blew up."""

    drift_eV_per_ps: float | None = optional()
    drift_eV_per_atom_per_ps: float | None = optional()
    rms_fluctuation_eV: float | None = optional()
    n_atoms: int | None = optional()
    length_ps: float | None = optional()
    steps_requested: int = 0
    steps: int = 0
    completed: bool = False
    stop_reason: str | None = None
    timestep_fs: float | None = optional()
    temperature_mean_K: float | None = optional()
    n_sigma_exceeded: int | None = optional()
    sigma_max: float | None = optional()
    ms_per_step: float | None = optional()


@dataclass
class MetadynamicsStats(Record):
    """``production/metadynamics/replica{r}/stats.json``: one MLP/MM metaD replica (σ eV/Å)."""

    replica: int
    steps_requested: int
    steps_done: int
    completed: bool
    stop_reason: str | None
    n_sigma_exceeded: int
    sigma_max: float | None
    ms_per_step: float | None


@dataclass
class FreeEnergyProfile(Record):
    """``production/metadynamics/fes.json``: the replica-mean free-energy profile along the metaD CV
    (kJ/mol, CV in PLUMED units): location of its minimum, span, standard errors, the replicas' runs
    and the profile's CSV."""

    replicas: int
    cv_min_location: float
    free_energy_span_kJ_mol: float
    max_standard_error_kJ_mol: float
    mean_standard_error_kJ_mol: float
    periodic: bool
    cv_range: list[float]
    runs: list[MetadynamicsStats] = nested(MetadynamicsStats)
    profile_csv: str


@dataclass
class EnsembleStability(Record):
    """Production of one ensemble (final or iteration 0): lists have one entry per replica."""

    replicas: int
    completed: int
    length_ps: list[float]
    first_sigma_exceeded_ps: list[float | None]
    sigma_mean: list[float | None]
    sigma_max: list[float | None]
    stop_reason: list[str | None]


@dataclass
class Stability(Record):
    """``production/stability.json``: the final vs the iteration-0 ensemble (None where not run)."""

    final: EnsembleStability | None = nested(EnsembleStability, default_none=True)
    initial: EnsembleStability | None = nested(EnsembleStability, default_none=True)

TIMESERIES_HEADER = "time_fs,sigma_force_eV_per_A,potential_energy_eV,kinetic_energy_eV,total_energy_eV,temperature_K"


def _write_timeseries(path: str, result) -> None:
    """σ and energies at every saved step as CSV (units in the header)."""
    epot = np.asarray(result.potential_energies)
    ekin = np.asarray(result.kinetic_energies)
    table = np.column_stack([result.times_fs, result.sigmas, epot, ekin, epot + ekin, result.temperatures_K])

    def writer(tmp: str) -> None:
        np.savetxt(tmp, table.reshape(-1, 6), delimiter=",", header=TIMESERIES_HEADER, comments="")

    atomic_write(path, writer)


def production_md_settings(production: ProductionSettings) -> dict[str, Any]:
    """Keyword arguments of :func:`run_mlp_md` shared by all production runs (NVT, NVE, metaD)."""
    return dict(
        timestep_fs=production.timestep,
        temperature_K=production.temperature,
        stride=production.stride,
        sigma_stop=production.sigma_stop,
        max_force=production.max_force,
        iteration=-1,
    )


def run_signature(settings: dict[str, Any], files: Sequence[str]) -> str:
    """What makes a checkpointed run the same run: its settings and the bytes of its input files."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def ran_without_breach(stats: ProductionStats) -> bool:
    """A production replica ran its full length and σ never exceeded sigma_stop."""
    return bool(stats.completed and stats.n_sigma_exceeded == 0)


def read_timeseries(path: str) -> dict[str, np.ndarray]:
    """Columns of a production time series CSV by header name."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    names = TIMESERIES_HEADER.split(",")
    return {name: data[:, i] if len(data) else np.zeros(0) for i, name in enumerate(names)}


def production(
    structure: str,
    models: Sequence[str],
    production: ProductionSettings,
    system_settings: SystemSettings,
    model_label: str,
    replica: int,
    trajectory_out: str,
    topology_out: str,
    timeseries_out: str,
    handback_out: str,
    device: str,
) -> ProductionStats:
    """One NVT (NPT with ``production.pressure``) replica of MLP/MM MD: DCD trajectory (input atom order) + PDB topology, σ and
    energies per saved step, Frames handed back to labeling (action ``collect``); returns the stats.
    The ensemble runs on ``device`` (``training.device``)."""
    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.dynamics.trajectory import write_topology
    from mlmm.model.ensemble import Ensemble
    from mlmm.potentials import ensemble_potential

    system = system_from_config(structure, system_settings)
    seed = derive_seed(production.seed, stream="production_replica", index=replica)
    checkpoint = None
    if production.checkpoint_steps:
        signature = run_signature({"production": production.to_dict(), "system": system_settings.to_dict(), "replica": replica,
                                   "model": model_label}, [structure, *models])
        checkpoint = CheckpointSpec(Path(trajectory_out).with_name("checkpoint.pkl"), production.checkpoint_steps, signature)
    result = run_mlp_md(
        system,
        ensemble_potential(system, Ensemble.load_for(list(models), device), embedding=system_settings.embedding),
        steps=production.steps,
        friction_per_fs=production.friction,
        seed=seed,
        sampler=f"production_{model_label}",
        source=f"{structure}:production:{model_label}:replica{replica}",
        sigma_action=production.sigma_action,
        trajectory=trajectory_out,
        checkpoint=checkpoint,
        pressure_bar=production.pressure,
        **production_md_settings(production),
    )
    write_topology(system, topology_out)
    _write_timeseries(timeseries_out, result)
    write_frames(handback_out, result.collected)
    exceeded = result.sigma_exceeded_steps
    return ProductionStats(
        model=model_label,
        models=list(models),
        replica=replica,
        seed=seed,
        ensemble="NVT" if production.pressure is None else "NPT",
        temperature_K=production.temperature,
        steps_requested=production.steps,
        steps_done=result.steps_done,
        length_ps=result.steps_done * production.timestep / 1000.0,
        completed=result.steps_done == production.steps,
        stop_reason=result.stop_reason,
        sigma_action=production.sigma_action,
        sigma_stop=production.sigma_stop,
        n_sigma_exceeded=len(exceeded),
        first_sigma_exceeded_ps=exceeded[0] * production.timestep / 1000.0 if exceeded else None,
        n_handed_back=len(result.collected),
        sigma_max=float(np.max(result.sigmas)) if result.sigmas else None,
        sigma_mean=float(np.mean(result.sigmas)) if result.sigmas else None,
        temperature_mean_K=float(np.mean(result.temperatures_K)) if result.temperatures_K else None,
        n_frames=len(result.frames),
        ms_per_step=result.ms_per_step,
    )


def energy_drift(times_fs: np.ndarray, total_energy_ev: np.ndarray, n_atoms: int) -> dict[str, float]:
    """Linear drift of the total energy: slope in eV/ps (whole system and per atom) and the
    RMS fluctuation about the fit (eV)."""
    t_ps = np.asarray(times_fs, float) / 1000.0
    e = np.asarray(total_energy_ev, float)
    if len(t_ps) < 2:
        raise ValueError("energy drift needs at least two saved steps")
    slope, intercept = np.polyfit(t_ps, e, 1)
    return {
        "drift_eV_per_ps": float(slope),
        "drift_eV_per_atom_per_ps": float(slope / n_atoms),
        "rms_fluctuation_eV": float(np.sqrt(np.mean((e - (slope * t_ps + intercept)) ** 2))),
        "n_atoms": int(n_atoms),
        "length_ps": float(t_ps[-1] - t_ps[0]),
    }


def production_nve(
    structure: str,
    models: Sequence[str],
    production: ProductionSettings,
    system_settings: SystemSettings,
    timeseries_out: str,
    device: str,
) -> NVEStats:
    """NVT equilibration, then NVE (friction 0) with the final ensemble (on ``device``,
    ``training.device``); returns the total-energy drift."""
    from mlmm.dynamics.mlp_md import MLPMDResult, run_mlp_md
    from mlmm.model.ensemble import Ensemble
    from mlmm.potentials import ensemble_potential

    system = system_from_config(structure, system_settings)
    ensemble = Ensemble.load_for(list(models), device)

    def potential():  # a fresh calculator per run
        return ensemble_potential(system, ensemble, embedding=system_settings.embedding)

    common = dict(
        seed=derive_seed(production.seed, stream="production_nve"),
        source=f"{structure}:production:nve",
        sigma_action="warn",
        **production_md_settings(production),
    )
    start = None
    if production.nve_equilibration_steps:
        equil = run_mlp_md(system, potential(), steps=production.nve_equilibration_steps, friction_per_fs=production.friction, sampler="nve_equilibration", **common)
        if equil.stop_reason:  # no NVE run from a blown-up state: report why instead
            _write_timeseries(timeseries_out, MLPMDResult())
            return NVEStats(steps_requested=production.nve_steps, steps=0, completed=False,
                            stop_reason=f"NVT equilibration: {equil.stop_reason}")
        start = equil.final_state
    result = run_mlp_md(system, potential(), steps=production.nve_steps, friction_per_fs=0.0, sampler="nve", start=start, **common)
    _write_timeseries(timeseries_out, result)
    series = read_timeseries(timeseries_out)
    # a run that blew up is reported, not fatal: the drift up to the stop is still informative
    drift = energy_drift(series["time_fs"], series["total_energy_eV"], len(system.atoms)) if len(series["time_fs"]) >= 2 else {}
    stats = NVEStats(
        **drift,
        steps_requested=production.nve_steps,
        steps=result.steps_done,
        completed=result.stop_reason is None,
        stop_reason=result.stop_reason,
        timestep_fs=production.timestep,
        temperature_mean_K=float(np.mean(result.temperatures_K)) if result.temperatures_K else None,
        n_sigma_exceeded=len(result.sigma_exceeded_steps),
        sigma_max=float(np.max(result.sigmas)) if result.sigmas else None,
        ms_per_step=result.ms_per_step,
    )
    log.info("NVE check: %s", stats)
    return stats


def stability(final_stats: Sequence[str], initial_stats: Sequence[str]) -> Stability:
    """Production stability of the final ensemble vs the iteration-0 ensemble (same settings)."""

    def describe(paths: Sequence[str]) -> EnsembleStability | None:
        if not paths:
            return None
        runs = [ProductionStats.from_json(p) for p in paths]
        return EnsembleStability(
            replicas=len(runs),
            completed=sum(ran_without_breach(r) for r in runs),
            length_ps=[r.length_ps for r in runs],
            first_sigma_exceeded_ps=[r.first_sigma_exceeded_ps for r in runs],
            sigma_mean=[r.sigma_mean for r in runs],
            sigma_max=[r.sigma_max for r in runs],
            stop_reason=[r.stop_reason for r in runs],
        )

    data = Stability(final=describe(final_stats), initial=describe(initial_stats))
    log.info("stability: %s", data)
    return data


def production_metadynamics(
    structure: str,
    models: Sequence[str],
    production: ProductionSettings,
    system_settings: SystemSettings,
    replica: int,
    out_dir: str,
    timeseries_out: str,
    device: str,
) -> MetadynamicsStats:
    """One MLP/MM well-tempered metaD replica with the final ensemble (on ``device``,
    ``training.device``): HILLS, COLVAR, σ(t); returns its stats."""
    from mlmm.dynamics.metadynamics import run_mlp_metadynamics
    from mlmm.model.ensemble import Ensemble
    from mlmm.potentials import ensemble_potential

    metad = production.metadynamics
    system = system_from_config(structure, system_settings)
    result = run_mlp_metadynamics(
        system,
        ensemble_potential(system, Ensemble.load_for(list(models), device), embedding=system_settings.embedding),
        plumed_input=metad.plumed,
        biasfactor=metad.biasfactor,
        out_dir=out_dir,
        steps=metad.steps,
        friction_per_fs=production.friction,
        seed=derive_seed(production.seed, stream="production_metadynamics", index=replica),
        sampler="production_metad",
        source=f"{structure}:metad:replica{replica}",
        sigma_action=metad.sigma_action,
        **production_md_settings(production),
    )
    _write_timeseries(timeseries_out, result)
    return MetadynamicsStats(
        replica=replica,
        steps_requested=metad.steps,
        steps_done=result.steps_done,
        completed=result.stop_reason is None,
        stop_reason=result.stop_reason,
        n_sigma_exceeded=len(result.sigma_exceeded_steps),
        sigma_max=float(np.max(result.sigmas)) if result.sigmas else None,
        ms_per_step=result.ms_per_step,
    )


def metadynamics_fes(hills: Sequence[str], replica_stats: Sequence[str], n_bins: int, csv_out: str,
                     png_out: str) -> FreeEnergyProfile:
    """Free-energy profile (kJ/mol) along the metaD CV: replica mean ± standard error; CSV, plot, record."""
    from mlmm.dynamics.metadynamics import free_energy_profile

    fes = free_energy_profile(list(hills), Path(csv_out).parent, n_bins)
    cv, f, err = fes["cv"], fes["free_energy_kJ_mol"], fes["standard_error_kJ_mol"]

    def write_csv(tmp: str) -> None:
        np.savetxt(tmp, np.column_stack([cv, f, err]), delimiter=",", header="cv,free_energy_kJ_mol,standard_error_kJ_mol", comments="")

    atomic_write(csv_out, write_csv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for k, profile in enumerate(fes["replicas"]):
        ax.plot(cv, profile - profile.min(), lw=0.7, alpha=0.6, label=f"replica {k}")
    ax.plot(cv, f, "k", lw=1.5, label="mean")
    ax.fill_between(cv, f - err, f + err, color="k", alpha=0.2, label="± standard error")
    ax.set_xlabel("CV (PLUMED units)")
    ax.set_ylabel("free energy (kJ/mol)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(png_out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    i_min = int(np.argmin(f))
    profile = FreeEnergyProfile(
        replicas=len(hills),
        cv_min_location=float(cv[i_min]),
        free_energy_span_kJ_mol=float(np.nanmax(f)),
        max_standard_error_kJ_mol=float(np.nanmax(err)),
        mean_standard_error_kJ_mol=float(np.nanmean(err)),
        periodic=fes["periodic"],
        cv_range=list(fes["cv_range"]),
        runs=[MetadynamicsStats.from_json(p) for p in replica_stats],
        profile_csv=csv_out,
    )
    log.info("metadynamics FES: %s", profile.to_dict())
    return profile
