"""Stage functions of the excited-state rules (workflow/rules/spectra.smk): paths in, paths out.

Chain: TDA/TDDFT labels of the ground-state ensemble (all states → absorption; bright state
energy/forces → bright-state label DB) → bright-state SchNet ensemble (the ordinary training
code on that DB) and property model (bright ΔE, f) → excited-state MLP/MM MD (vertical
excitation from Wigner samples or the ground-state structure, relaxation discarded) → ML emission spectrum from
the property model on the trajectory frames → TDDFT reference on a subset of those frames →
spectra, Stokes shift and ML-vs-TDDFT comparison.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from mlmm.excited.neural_property import NeuralPropertyMetrics
from mlmm.excited.property_model import PropertyModelMetrics
from mlmm.jobs import read_json, system_from_config
from mlmm.labeling.reports import ExcitedLabels, StateReference
from mlmm.records import Record, nested, optional
from mlmm.sampling import check_unbiased
from mlmm.seeds import derive_seed
from mlmm.settings import (
    EmbeddingSettings,
    ExcitedDynamicsSettings,
    LevelSettings,
    PropertyModelSettings,
    SpectraSettings,
    SystemSettings,
    TDSettings,
)

if TYPE_CHECKING:
    from ase import Atoms

    from mlmm.model.ensemble import Ensemble

log = logging.getLogger(__name__)

#: Property-model kernel value to the nearest training frame below which a prediction counts as
#: extrapolated (reported, not hidden).
COVERAGE_MIN: float = 0.5
#: fraction of a spectrum's line intensity outside the energy grid above which the spectra stage warns
OUTSIDE_GRID_WARN: float = 0.01


@dataclass
class PropertyPrediction(Record):
    """Property-model prediction on one trajectory frame: bright ΔE (eV), f, their committee σ, and
    the kernel coverage (similarity to the nearest training frame; None for the neural model, which
    has no kernel) or the neural model's transition dipole (e·Å). Records written before the
    committee σ and the coverage existed read as σ 0 and coverage 1."""

    index: int
    frame_id: str
    bright_excitation_energy_ev: float
    bright_oscillator_strength: float
    sigma_excitation_energy_ev: float = 0.0
    sigma_oscillator_strength: float = 0.0
    coverage: float | None = 1.0
    transition_dipole_e_ang: list[float] | None = optional()


@dataclass
class PropertyPredictions(Record):
    """``excited/dynamics/predictions.json``: the property model on every excited-state trajectory frame."""

    frames: str
    n_extrapolated: int
    coverage_min: float
    mean_sigma_excitation_energy_ev: float
    mean_sigma_oscillator_strength: float
    records: list[PropertyPrediction] = nested(PropertyPrediction)


@dataclass
class ReplicaRun(Record):
    """One bright-state MD replica: steps run, why it stopped (None: ran through), frames kept after
    the relaxation, the largest ensemble σ (eV/Å) and the cost (ms per step); with ``initial:
    ground_state_md`` also its ground-state run (``ground_state``: steps, time_ps, sigma_max, stop_reason)."""

    replica: int
    steps_done: int
    stop_reason: str | None
    n_frames_kept: int
    sigma_max: float
    ms_per_step: float
    ground_state: dict[str, Any] | None = optional()


@dataclass
class ExcitedDynamicsStats(Record):
    """``excited/dynamics/stats.json``: frames kept after ``relaxation_fs`` (fs) over all replicas,
    how the start states were drawn (``initial``, e.g. the Wigner statistics of
    :func:`mlmm.sampling.wigner.wigner_starts`) and one line per replica."""

    n_frames: int
    relaxation_fs: float
    initial: dict[str, Any]
    replicas: list[ReplicaRun] = nested(ReplicaRun)


@dataclass
class SpectraLabels(Record):
    """The TDA/TDDFT labels of the absorption spectrum (see :class:`ExcitedLabels`): frames, frames
    labelled, of those with an ambiguous bright state, frames per bright state, bright-state training
    rows (None when no label DB was written)."""

    n_frames: int
    n_ok: int
    n_ambiguous: int
    bright_state_counts: dict[str, int]
    n_training_rows: int | None


@dataclass
class Broadening(Record):
    """Line broadening of every spectrum: full width at half maximum (eV) and line shape."""

    fwhm_ev: float
    shape: str


@dataclass
class SpectraSummary(Record):
    """``excited/spectra/summary.json`` (the summary's ``excited``).

    Free-form parts, as :mod:`mlmm.spectra.ensemble` returns them: ``absorption`` and
    ``emission_ml`` (peak in eV and nm, integral, fraction outside the grid, frames; the ML emission
    also the extrapolated frames and the mean committee σ of ΔE in eV), ``stokes`` (shift in eV, nm
    and cm⁻¹) and ``reference`` (ML vs TDDFT emission on the reference frames: peak and mean shifts
    in eV, overlap, MAE of ΔE in eV and of f, fraction of ΔE errors within 2σ). Then the broadening,
    the absorption labels and, when the stage was given them, the property-model metrics, the
    excited-dynamics statistics and the scalar keys of each bright-state AL selection.
    """

    absorption: dict[str, Any]
    emission_ml: dict[str, Any]
    stokes: dict[str, float]
    reference: dict[str, Any]
    broadening: Broadening = nested(Broadening)
    labels: SpectraLabels = nested(SpectraLabels)
    property_model: PropertyModelMetrics | None = nested(PropertyModelMetrics, optional_key=True)
    property_model_neural: NeuralPropertyMetrics | None = nested(NeuralPropertyMetrics, optional_key=True)
    dynamics: ExcitedDynamicsStats | None = nested(ExcitedDynamicsStats, optional_key=True)
    active_learning: list[dict[str, Any]] | None = optional()


def evenly_spaced(n_total: int, n_wanted: int) -> list[int]:
    """Indices of ``n_wanted`` frames spread evenly over ``n_total`` (all if fewer)."""
    if n_wanted >= n_total:
        return list(range(n_total))
    return sorted({int(round(i)) for i in np.linspace(0, n_total - 1, n_wanted)})


def excited_state_reference(frame_path: str, level: LevelSettings, td: TDSettings) -> StateReference:
    """The run's one bright-state reference: TDA/TDDFT of the input structure's Frame (``frame_path``)
    at the ``excited.level``."""
    from mlmm.engines.pyscf_qmmm import check_level
    from mlmm.frames import read_frames
    from mlmm.labeling.excited import state_reference

    check_level(level, "excited.level")
    reference = state_reference(read_frames(frame_path)[0], level, td, source=frame_path)
    log.info("state reference: S%d, ΔE = %.3f eV, f = %.3f, μ = %s e·Å", reference.state_index + 1,
             reference.excitation_energy_ev, reference.oscillator_strength,
             np.round(reference.transition_dipole_e_ang, 3).tolist())
    return reference


def label_excited(
    frames_path: str,
    n_frames: int,
    level: LevelSettings,
    td: TDSettings,
    db_out: str | None = None,
    samplers: Sequence[str] | None = None,
    state_reference: str | None = None,
) -> ExcitedLabels:
    """TDA/TDDFT of ``n_frames`` frames of ``frames_path``, evenly spaced over those of ``samplers``
    (``info["sampler"]``; None: all frames); the bright state identified against the run's state
    reference (``state_reference``, a :class:`StateReference` JSON; see ``excited.td.tracking``).

    Returns the per-frame records (all states, f, transition dipoles, bright state and its flag)
    and, when ``db_out`` is given, writes the bright state's energy/forces as a label DB in the
    ordinary labels contract (unambiguous frames only).
    """
    from mlmm.engines.pyscf_qmmm import check_level
    from mlmm.frames import read_frames
    from mlmm.labeling.db import write_label_db
    from mlmm.labeling.excited import label_excited_frames

    check_level(level, "excited.level")
    frames = read_frames(frames_path)
    candidates = list(range(len(frames)))
    if samplers is not None:
        candidates = [i for i in candidates if frames[i].info["sampler"] in samplers]
        if not candidates:
            found = sorted({f.info["sampler"] for f in frames})
            raise ValueError(f"{frames_path}: no frame of the samplers {list(samplers)} "
                             f"(excited.absorption_samplers) among its {len(frames)} frames (samplers {found})")
    picked = [candidates[k] for k in evenly_spaced(len(candidates), n_frames)]
    subset = [frames[i] for i in picked]
    log.info("%s: %d of %d frames, %s %s", frames_path, len(subset), len(frames),
             "TDA" if td.tda else "TDDFT", level.label)
    reference = StateReference.from_json(state_reference) if state_reference else None
    rows, records = label_excited_frames(subset, level, td, reference=reference, forces=db_out is not None, log=log)
    for rec in records:
        rec.source_index = picked[rec.index]
        rec.sampler = str(subset[rec.index].info["sampler"])
    ok = [r for r in records if r.ok]
    labels = ExcitedLabels(
        level=level.to_dict(), td=td.to_dict(), frames=frames_path,
        n_frames=len(subset), n_ok=len(ok),
        n_ambiguous=sum(bool(r.bright_ambiguous) for r in ok),
        bright_state_counts={str(k): int(v) for k, v in zip(*np.unique([r.bright_state for r in ok], return_counts=True))} if ok else {},
        records=records,
    )
    if db_out is not None:
        write_label_db(db_out, rows, level.to_dict())
        labels.n_training_rows = len(rows)
    log.info("done: %d ok, %d ambiguous, %s", labels.n_ok, labels.n_ambiguous, labels.bright_state_counts)
    return labels


def train_property_model(db_paths: Sequence[str], records_paths: Sequence[str], settings: PropertyModelSettings, model_out: str,
                         metrics_out: str) -> None:
    """Fit the bright-state property model (``settings.kind``: krr or neural) on the labelled frames
    of the bright-state DBs (initial ensemble and the frames added by the bright-state active
    learning); the neural model also learns the transition dipole (in the state reference's phase)
    and takes the embedding the labels were cut with."""
    from mlmm.excited.property_model import fit_property_model
    from mlmm.labeling.db import db_embedding, frame_id, read_labelled_frames

    by_id = {r.frame_id: r for p in records_paths for r in ExcitedLabels.from_json(p).ok_records()}
    frames = [f for p in db_paths for f in read_labelled_frames(p) if frame_id(f) in by_id]
    records = [by_id[frame_id(f)] for f in frames]
    de = [r.bright_excitation_energy_ev for r in records]
    osc = [r.bright_oscillator_strength for r in records]
    if settings.kind == "neural":
        from mlmm.excited.neural_property import NeuralPropertyArchitecture, fit_neural_property_model

        nn_settings = settings.neural
        missing = [r.frame_id for r in records if r.bright_transition_dipole_e_ang is None]
        if missing:
            raise ValueError(f"{records_paths}: {len(missing)} records have no bright_transition_dipole_e_ang "
                             f"(e.g. {missing[0]}); rerun their labelling rule")
        arch = NeuralPropertyArchitecture(nn_settings.representation, nn_settings.n_atom_basis, nn_settings.n_interactions,
                                          nn_settings.n_rbf, nn_settings.cutoff, db_embedding(list(db_paths)))
        model, metrics = fit_neural_property_model(
            frames, de, [r.bright_transition_dipole_e_ang for r in records], osc, arch,
            n_members=nn_settings.n_members, epochs=nn_settings.max_epochs, lr=nn_settings.lr,
            batch_size=nn_settings.batch_size, patience=nn_settings.patience, dipole_weight=nn_settings.dipole_weight,
            val_fraction=nn_settings.val_fraction, seed=settings.seed)
    else:
        model, metrics = fit_property_model(frames, de, osc, cv_folds=settings.cv_folds, seed=settings.seed)
    model.save(model_out)
    log.info("property model: %s", metrics)
    metrics.to_json(metrics_out)


def excited_dynamics(structure: str, models: Sequence[str], dyn: ExcitedDynamicsSettings, system_settings: SystemSettings,
                     frames_out: str, device: str, ground_models: Sequence[str] = ()) -> ExcitedDynamicsStats:
    """Bright-state MLP/MM MD replicas, vertically excited from the ground state.

    ``initial``: 'ground_state_md' starts replica r from the end of its own ground-state MLP/MM
    run (:func:`ground_state_starts` with ``ground_models``), so every replica has its own
    thermalised MM environment; 'wigner' from the r-th Wigner sample of the QM region (positions
    and momenta at ``temperature``, GFN2-xTB Hessian in ``wigner_environment``; MM momenta
    Maxwell–Boltzmann, MM positions of the input structure), 'ground_state' from the input
    structure with Maxwell–Boltzmann momenta.
    Replica r uses seed ``derive_seed(seed, stream="excited_replica", index=r)`` (= ``seed + r``);
    frames before ``relaxation`` fs are discarded (the relaxation from the Franck–Condon region);
    the rest are written as Frames and the run's statistics returned. The bright-state ensemble runs
    on ``device`` (``training.device``).
    """
    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.frames import write_frames
    from mlmm.model.ensemble import Ensemble
    from mlmm.potentials import ensemble_potential

    system = system_from_config(structure, system_settings)
    ensemble = Ensemble.load_for(list(models), device)
    if dyn.initial == "ground_state_md":
        if not ground_models:
            raise ValueError("excited.dynamics.initial ground_state_md needs the ground-state ensemble (ground_models)")
        starts, ground_runs = ground_state_starts(system, Ensemble.load_for(list(ground_models), device), dyn,
                                                  system_settings.embedding, structure)
        initial = {"initial": "ground_state_md", "ground_steps": dyn.ground_steps}
    else:
        starts, initial = initial_states(system, dyn.initial, n=dyn.n_replicas,
                                         temperature_K=dyn.temperature, seed=dyn.seed,
                                         environment=dyn.wigner_environment, embedding=system_settings.embedding)
        ground_runs = [None] * dyn.n_replicas
    kept, replicas = [], []
    for r in range(dyn.n_replicas):
        res = run_mlp_md(
            system, ensemble_potential(system, ensemble, embedding=system_settings.embedding),
            steps=dyn.steps, timestep_fs=dyn.timestep,
            temperature_K=dyn.temperature, friction_per_fs=dyn.friction, stride=dyn.stride,
            seed=derive_seed(dyn.seed, stream="excited_replica", index=r), sigma_stop=dyn.sigma_stop, max_force=dyn.max_force,
            sampler="excited_md", iteration=r,
            source=f"{structure}:excited_replica{r}", start=starts[r],
        )
        n_before = len(kept)
        for frame, t in zip(res.frames, res.times_fs):
            if t >= dyn.relaxation:
                frame.info["time_fs"] = float(t)
                frame.info["replica"] = r
                kept.append(frame)
        replicas.append(ReplicaRun(replica=r, steps_done=res.steps_done, stop_reason=res.stop_reason,
                                   n_frames_kept=len(kept) - n_before, sigma_max=float(max(res.sigmas, default=0.0)),
                                   ms_per_step=res.ms_per_step, ground_state=ground_runs[r]))
        log.info("replica %d: %s", r, replicas[-1].to_dict())
    if not kept:
        raise RuntimeError("excited-state MD kept no frames after the relaxation period; "
                           "lower excited.dynamics.relaxation or raise steps")
    write_frames(frames_out, kept)
    return ExcitedDynamicsStats(n_frames=len(kept), relaxation_fs=dyn.relaxation, initial=initial, replicas=replicas)


def ground_state_starts(system, ground: "Ensemble", dyn: ExcitedDynamicsSettings, embedding: EmbeddingSettings,
                        structure: str) -> tuple[list, list[dict[str, Any]]]:
    """Start states of the bright-state replicas: the last state (positions and momenta of every
    atom) of one ground-state MLP/MM Langevin run per replica, ``dyn.ground_steps`` steps at
    ``dyn.temperature`` from the input structure with its own seed
    (``derive_seed(seed, stream="excited_ground", index=r)``), so the replicas start from
    independent thermal ground-state configurations of QM region and environment alike (vertical
    excitation: the momenta carry over). σ does not stop these runs (``sigma_action`` warn; a
    force above ``dyn.max_force`` does); each run's steps, σ max and stop reason are returned."""
    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.potentials import ensemble_potential

    starts, runs = [], []
    for r in range(dyn.n_replicas):
        res = run_mlp_md(
            system, ensemble_potential(system, ground, embedding=embedding), steps=dyn.ground_steps,
            timestep_fs=dyn.timestep, temperature_K=dyn.temperature, friction_per_fs=dyn.friction,
            stride=max(1, dyn.ground_steps // 10), seed=derive_seed(dyn.seed, stream="excited_ground", index=r),
            sigma_stop=dyn.sigma_stop, sigma_action="warn", max_force=dyn.max_force, sampler="excited_ground_md",
            iteration=r, source=f"{structure}:excited_ground{r}",
        )
        if res.stop_reason is not None:
            raise RuntimeError(f"excited dynamics: the ground-state run of replica {r} stopped ({res.stop_reason}) "
                               "before its start state was reached; lower excited.dynamics.ground_steps or improve the "
                               "ground-state ensemble")
        starts.append(res.final_state)
        runs.append({"steps": res.steps_done, "time_ps": res.steps_done * dyn.timestep / 1000.0,
                     "sigma_max": float(max(res.sigmas, default=0.0)), "stop_reason": res.stop_reason})
        log.info("replica %d: ground-state start after %s", r, runs[-1])
    return starts, runs


def initial_states(system, initial: str, *, n: int, temperature_K: float, seed: int, environment: str,
                   embedding: EmbeddingSettings) -> tuple[list, dict]:
    """Start states of ``n`` excited-state MD runs: Wigner samples (``initial='wigner'``, see
    :func:`mlmm.sampling.wigner.wigner_starts`) or ``None`` each (``'ground_state'``: the input
    structure with Maxwell–Boltzmann momenta drawn by the MD); and a record of how."""
    if initial == "ground_state":
        return [None] * n, {"initial": "ground_state"}
    if initial != "wigner":
        raise ValueError(f"excited dynamics: initial must be 'wigner' or 'ground_state', got {initial!r}")
    from mlmm.sampling.wigner import wigner_starts

    return wigner_starts(system, n=n, temperature_K=temperature_K, seed=seed, environment=environment,
                         embedding=embedding, log=log)


PROPERTY_KINDS = ("krr", "neural")


def _check_property_kind(kind: str) -> None:
    if kind not in PROPERTY_KINDS:
        raise ValueError(f"excited.property_model.kind: {kind!r}, expected one of {list(PROPERTY_KINDS)}")


def property_predictions(frames: Sequence[Atoms], model_path: str, kind: str) -> tuple:
    """The property model's (``kind`` krr or neural) bright ΔE (eV), f, their committee σ, kernel
    coverage (krr; None for neural) and transition dipole (neural, e·Å; None for krr) on ``frames``."""
    _check_property_kind(kind)
    if kind == "neural":
        from mlmm.excited.neural_property import NeuralPropertyModel

        de, f, sigma_de, sigma_f, mu = NeuralPropertyModel.load(model_path).predict_with_sigma(frames)
        return de, f, sigma_de, sigma_f, [None] * len(frames), [[float(v) for v in m] for m in mu]
    from mlmm.excited.property_model import PropertyModel

    model = PropertyModel.load(model_path)
    de, f, sigma_de, sigma_f = model.predict_with_sigma(frames)
    return de, f, sigma_de, sigma_f, [float(c) for c in model.coverage(frames)], [None] * len(frames)


def predict_properties(frames_path: str, model_path: str, kind: str) -> PropertyPredictions:
    """Property-model ΔE (eV) and f of the bright state, with their committee σ (eV, unitless), on
    every trajectory frame; the kernel coverage (``kind`` krr) or the transition dipole (neural)
    with them."""
    from mlmm.frames import read_frames
    from mlmm.labeling.db import frame_id

    frames = read_frames(frames_path)
    de, f, sigma_de, sigma_f, cov, dipoles = property_predictions(frames, model_path, kind)
    n_out = sum(c is not None and c < COVERAGE_MIN for c in cov)
    predictions = PropertyPredictions(
        frames=frames_path, n_extrapolated=n_out, coverage_min=COVERAGE_MIN,
        mean_sigma_excitation_energy_ev=float(sigma_de.mean()), mean_sigma_oscillator_strength=float(sigma_f.mean()),
        records=[PropertyPrediction(i, frame_id(fr), float(e), float(o), float(se), float(sf), c, d)
                 for i, (fr, e, o, se, sf, c, d) in enumerate(zip(frames, de, f, sigma_de, sigma_f, cov, dipoles))])
    log.info("%d frames: ΔE %.3f ± %.3f eV (mean committee σ %.3f eV), f %.3f ± %.3f (σ %.3f); %d outside the "
             "training data (coverage < %.2f)", len(frames), de.mean(), de.std(), sigma_de.mean(), f.mean(), f.std(),
             sigma_f.mean(), n_out, COVERAGE_MIN)
    return predictions


def excited_spectra(absorption_records: str, predictions: str, reference_records: str, spectra: SpectraSettings,
                    absorption_csv: str, emission_csv: str, absorption_png: str, emission_png: str,
                    summary_out: str, property_kind: str, property_metrics: str | None = None,
                    dynamics_stats: str | None = None, selections: Sequence[str] = ()) -> None:
    """Absorption (TDDFT, ground-state ensemble), ML emission, TDDFT reference emission, comparison.

    ``property_metrics`` and ``dynamics_stats`` (JSON), when given, are copied into the summary
    (the metrics of the ``property_kind`` neural model under ``property_model_neural``).
    """
    _check_property_kind(property_kind)
    neural_metrics = bool(property_metrics) and property_kind == "neural"
    krr_metrics = bool(property_metrics) and not neural_metrics
    from mlmm.spectra import ensemble as sp

    grid = sp.energy_grid(spectra.e_min, spectra.e_max, spectra.n_points)
    fwhm, shape = spectra.fwhm, spectra.shape
    labels = ExcitedLabels.from_json(absorption_records)
    absr = labels.ok_records()
    check_unbiased(dict(Counter(str(r.sampler) for r in absr)), absorption_records, "the absorption spectrum")
    absorption = sp.absorption_spectrum([r.excitation_energies_ev for r in absr],
                                        [r.oscillator_strengths for r in absr], grid, fwhm, shape)
    pred = PropertyPredictions.from_json(predictions).records
    emission_ml = sp.emission_spectrum([r.bright_excitation_energy_ev for r in pred],
                                       [r.bright_oscillator_strength for r in pred], grid, fwhm, shape)
    ref = ExcitedLabels.from_json(reference_records).ok_records()
    pred_by_id = {r.frame_id: r for r in pred}
    same = [r for r in ref if r.frame_id in pred_by_id]
    if not same:
        raise RuntimeError(f"{reference_records}: no reference frame matches a predicted trajectory frame")
    emission_ref = sp.emission_spectrum([r.bright_excitation_energy_ev for r in same],
                                        [r.bright_oscillator_strength for r in same], grid, fwhm, shape)
    emission_ml_same = sp.emission_spectrum([pred_by_id[r.frame_id].bright_excitation_energy_ev for r in same],
                                            [pred_by_id[r.frame_id].bright_oscillator_strength for r in same],
                                            grid, fwhm, shape)
    de_err = np.array([pred_by_id[r.frame_id].bright_excitation_energy_ev - r.bright_excitation_energy_ev for r in same])
    f_err = np.array([pred_by_id[r.frame_id].bright_oscillator_strength - r.bright_oscillator_strength for r in same])
    de_sigma = np.array([pred_by_id[r.frame_id].sigma_excitation_energy_ev for r in same])
    sp.write_spectrum_csv(absorption_csv, grid, {"absorption": absorption})
    sp.write_spectrum_csv(emission_csv, grid, {"emission_ml": emission_ml, "emission_ml_reference_frames": emission_ml_same,
                                               "emission_tddft_reference_frames": emission_ref})
    stokes = sp.stokes_shift(grid, absorption, emission_ml)
    comparison = sp.compare_spectra(grid, emission_ml_same, emission_ref)
    sp.plot_spectra(absorption_png, grid, {"absorption (TDDFT, ground-state ensemble)": absorption,
                                           "emission (ML, excited-state MD)": emission_ml},
                    "Absorption and emission", {"abs": stokes["absorption_peak_ev"], "em": stokes["emission_peak_ev"]})
    sp.plot_spectra(emission_png, grid, {"ML (property model)": emission_ml_same, "TDDFT": emission_ref},
                    f"Emission on the {len(same)} reference frames: peak shift {comparison['peak_shift_ev']:+.3f} eV, "
                    f"mean shift {comparison['mean_shift_ev']:+.3f} eV, overlap {comparison['overlap']:.2f}")
    totals = {"absorption": float(np.mean([np.sum(r.oscillator_strengths) for r in absr])),
              "emission_ml": float(np.mean([r.bright_oscillator_strength * r.bright_excitation_energy_ev ** 2
                                            for r in pred]))}
    summaries = {name: sp.spectrum_summary(grid, spectrum, totals[name])
                 for name, spectrum in (("absorption", absorption), ("emission_ml", emission_ml))}
    for name, s in summaries.items():
        if s.get("fraction_outside_grid", 0.0) > OUTSIDE_GRID_WARN:
            log.warning("%s: %.1f %% of the intensity lies outside excited.spectra.e_min..e_max = %g..%g eV; "
                        "widen the grid", name, 100 * s["fraction_outside_grid"], spectra.e_min, spectra.e_max)
    summary = SpectraSummary(
        absorption={**summaries["absorption"], "n_frames": len(absr)},
        emission_ml={**summaries["emission_ml"], "n_frames": len(pred),
                     "n_extrapolated": int(sum(r.coverage is not None and r.coverage < COVERAGE_MIN for r in pred)),
                     "mean_sigma_excitation_energy_ev": float(np.mean([r.sigma_excitation_energy_ev for r in pred]))},
        stokes=stokes,
        reference={**comparison, "n_frames": len(same),
                   "n_ambiguous": sum(bool(r.bright_ambiguous) for r in same),
                   "mae_excitation_energy_ev": float(np.abs(de_err).mean()),
                   "mae_oscillator_strength": float(np.abs(f_err).mean()),
                   "mean_sigma_excitation_energy_ev": float(de_sigma.mean()),
                   # how often the committee σ brackets the actual error (≈0.95 if σ were a calibrated Gaussian error)
                   "fraction_within_2sigma": float(np.mean(np.abs(de_err) <= 2.0 * de_sigma))},
        broadening=Broadening(fwhm, shape),
        labels=SpectraLabels(labels.n_frames, labels.n_ok, labels.n_ambiguous, labels.bright_state_counts,
                             labels.n_training_rows),
        property_model=PropertyModelMetrics.from_json(property_metrics) if krr_metrics else None,
        property_model_neural=NeuralPropertyMetrics.from_json(property_metrics) if neural_metrics else None,
        dynamics=ExcitedDynamicsStats.from_json(dynamics_stats) if dynamics_stats else None,
    )
    if selections:
        from mlmm.al.selection import SelectionRecord

        summary.active_learning = [
            {k: v for k, v in SelectionRecord.from_json(p).to_dict().items()
             if isinstance(v, (int, float, str, bool)) or v is None}
            for p in selections
        ]
    log.info("spectra: %s", summary.to_dict())
    summary.to_json(summary_out)
