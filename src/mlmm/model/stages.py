"""Stage functions of the training rules (paths in, paths out)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from mlmm.frames import atomic_write
from mlmm.records import Record, nested
from mlmm.seeds import derive_seed
from mlmm.settings import LevelSettings, TrainingSettings

if TYPE_CHECKING:
    from mlmm.model.calibration import Calibration
    from mlmm.model.train import MemberMetrics

log = logging.getLogger(__name__)


@dataclass
class EnsembleEvaluation(Record):
    """``models/it{i}/ensemble.json``: ensemble-mean errors on the held-out test frames.

    MAEs in eV (energy) and eV/Å (forces on QM and on MM atoms); None without test frames.
    """

    n_frames: int | None = None
    energy_mae: float | None = None
    force_mae_qm: float | None = None
    force_mae_mm: float | None = None
    n_test: int = 0
    models: list[str] | None = None


def train_member(
    dbs: Sequence[str],
    iteration: int,
    member: int,
    training: TrainingSettings,
    selection: Sequence[str],
    previous_model: Sequence[str],
    model_out: str,
    log_dir: str,
    threads: int = 1,
) -> MemberMetrics:
    """Train ensemble member ``member`` of iteration ``iteration`` on all labels so far; returns its metrics.

    When the iteration added no labels (converged, or nothing in the trust window) the
    previous member (and its metrics) is carried forward unchanged instead of retraining on identical data.
    ``threads``: torch threads of the training.
    """
    from mlmm.al.selection import read_selection
    from mlmm.model.train import MemberMetrics, train_member as run

    record = read_selection(selection)
    if record is not None and record.n_selected == 0 and previous_model:
        log.info("iteration %d added no labels (%s): carrying %s forward", iteration, record.reason, previous_model[0])
        atomic_write(model_out, lambda tmp: shutil.copyfile(previous_model[0], tmp))
        metrics = MemberMetrics.from_json(Path(previous_model[0]).with_suffix(".json"))
        metrics.carried_forward_from = previous_model[0]
        return metrics

    metrics = run(
        list(dbs),
        model_out,
        seed=derive_seed(training.seed, stream="training_member", index=member),
        settings=training,
        log_dir=log_dir,
        num_threads=threads,
        init_from=previous_model[0] if previous_model and training.warm_start else None,
    )
    metrics.iteration, metrics.member = iteration, member
    return metrics


def evaluate_ensemble(models: Sequence[str], dbs: Sequence[str], training: TrainingSettings) -> EnsembleEvaluation:
    """Ensemble MAEs on the held-out test frames (identical for all members, never trained on);
    members run on ``training.device``."""
    from mlmm.model.ensemble import Ensemble
    from mlmm.model.train import held_out_test_set

    ensemble = Ensemble.load_for(list(models), training.device)
    db_path, test_idx, workdir = held_out_test_set(list(dbs), training)
    try:
        result = ensemble.evaluate_db(db_path, indices=test_idx) if len(test_idx) else {}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    errors = {k: result[k] for k in ("n_frames", "energy_mae", "force_mae_qm", "force_mae_mm") if k in result}
    evaluation = EnsembleEvaluation(**errors, n_test=len(test_idx), models=list(models))
    log.info("ensemble test errors: %s", evaluation)
    return evaluation


def delta_labels(labels_db: str, baseline: str, out_db: str, stats_out: str) -> None:
    """Labels DB of corrections reference − baseline (Δ-learning) and the baseline's errors."""
    from mlmm.model.baseline import write_delta_db

    write_delta_db(labels_db, out_db, baseline).to_json(stats_out)


def _held_out(models: Sequence[str], dbs: Sequence[str], training: TrainingSettings) -> dict[str, Any]:
    """Ensemble evaluation (with per-atom arrays) on the held-out test frames of ``dbs``, on ``training.device``."""
    from mlmm.model.ensemble import Ensemble
    from mlmm.model.train import held_out_test_set

    ensemble = Ensemble.load_for(list(models), training.device)
    db_path, test_idx, workdir = held_out_test_set(list(dbs), training)
    try:
        result = ensemble.evaluate_db(db_path, indices=test_idx, return_arrays=True) if len(test_idx) else {}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["n_test"] = len(test_idx)
    return result


def calibrate_ensemble(models: Sequence[str], dbs: Sequence[str], training: TrainingSettings, iteration: int) -> Calibration:
    """models/it{i}/calibration.json: Spearman ρ of σ vs max force error and the σ scale factor."""
    from mlmm.model.calibration import calibrate

    result = _held_out(models, dbs, training)
    calibration = calibrate(result.get("sigma_force", []), result.get("max_force_error", []))
    calibration.iteration = iteration
    calibration.sigma_force = [float(v) for v in result.get("sigma_force", [])]
    calibration.max_force_error = [float(v) for v in result.get("max_force_error", [])]
    calibration.frames = "held-out test frames of all labels so far (never trained on by any member)"
    log.info("calibration it%d: rho %s, scale %.3f on %d frames", iteration, calibration.spearman_rho,
             calibration.scale, calibration.n_frames)
    return calibration


@dataclass
class TrainingPlots(Record):
    """``plots/training_plots.json`` (the summary's ``training_plots``): paths of the learning-curve,
    parity and calibration PNGs and the number of held-out test frames of the parity plots."""

    learning_curves: str
    parity: str
    calibration: str
    n_test: int


def training_plots(
    metrics: Sequence[str], models: Sequence[str], dbs: Sequence[str], calibrations: Sequence[str],
    training: TrainingSettings, learning_png: str, parity_png: str, calibration_png: str,
    index_out: str,
) -> None:
    """Learning curves of every member, parity plots (energy, QM forces, MM forces) on the held-out
    frames, and σ vs error per AL iteration, as PNGs for the report."""
    from mlmm.model.calibration import Calibration
    from mlmm.model.plots import plot_calibration, plot_learning_curves, plot_parity
    from mlmm.model.train import MemberMetrics

    plot_learning_curves([MemberMetrics.from_json(m) for m in metrics], learning_png)
    held_out = _held_out(models, dbs, training)
    plot_parity(held_out, parity_png)
    plot_calibration([Calibration.from_json(c) for c in calibrations], calibration_png)
    TrainingPlots(learning_png, parity_png, calibration_png, held_out["n_test"]).to_json(index_out)


@dataclass
class ModelErrors(Record):
    """Ensemble-mean errors on a set of labelled frames: MAEs in eV (energy) and eV/Å (forces on QM
    and on MM atoms); all None without frames."""

    n_frames: int | None
    energy_mae: float | None
    force_mae_qm: float | None
    force_mae_mm: float | None

    @classmethod
    def of(cls, result: dict[str, Any]) -> "ModelErrors":
        """The errors of an :meth:`mlmm.model.ensemble.Ensemble.evaluate_db` result."""
        return cls(*(result.get(k) for k in ("n_frames", "energy_mae", "force_mae_qm", "force_mae_mm")))


@dataclass
class SeparateTrajectoryErrors(ModelErrors):
    """:class:`ModelErrors` on the separate trajectory plus :func:`energy_error_analysis` of the energy error."""

    mean_error: float
    offset_free_mae: float
    rho_closest_mm: float


@dataclass
class AblationArm(Record):
    """One ensemble of the field ablation: errors on the separate trajectory and on the test split."""

    separate_trajectory: SeparateTrajectoryErrors = nested(SeparateTrajectoryErrors)
    test_split: ModelErrors = nested(ModelErrors)


@dataclass
class FieldAblation(Record):
    """``ablation/field_ablation.json``: the ensembles with and without the MM field input, the
    environment scan (:func:`mlmm.model.environment_scan.environment_scan`) and, per error, whether
    the field makes it smaller on the separate trajectory."""

    units: dict[str, str]
    with_field: AblationArm = nested(AblationArm)
    without_field: AblationArm = nested(AblationArm)
    environment_scan: dict[str, Any]
    field_improves: dict[str, bool]


def closest_mm_distances(db_path: str) -> np.ndarray:
    """Per row of a labels DB: distance (Å) from the nearest MM site to a QM heavy atom."""
    from ase.db import connect

    out = []
    for row in connect(db_path, use_lock_file=False).select():
        qm = np.asarray(row.data["qm_mask"], bool)
        heavy = row.positions[qm & (row.numbers > 1)]
        mm = row.positions[~qm]
        out.append(float(np.linalg.norm(mm[:, None] - heavy[None], axis=2).min()) if len(mm) else np.inf)
    return np.array(out)


def energy_error_analysis(energy_errors_ev: Sequence[float], closest_ang: np.ndarray) -> dict[str, Any]:
    """Split an energy error into its mean offset and the rest, and say how much of it follows the environment.

    ``offset_free_mae`` (eV) is the MAE after removing the mean error (relative energies within the
    set); ``rho_closest_mm`` is Spearman ρ between the error and the closest QM–MM distance: a model
    blind to the environment overestimates the energy when a water is close (ρ < 0).
    """
    from scipy.stats import spearmanr

    err = np.asarray(energy_errors_ev, float)
    rho = spearmanr(err, closest_ang)[0] if len(err) > 2 else float("nan")
    return {"mean_error": float(err.mean()), "offset_free_mae": float(np.abs(err - err.mean()).mean()),
            "rho_closest_mm": float(rho)}


def field_ablation(
    field_models: Sequence[str], nofield_models: Sequence[str], heldout_db: str, heldout_frames: str,
    dbs: Sequence[str], training: TrainingSettings, level: LevelSettings, scan_png: str,
) -> FieldAblation:
    """Errors (eV, eV/Å) of the ensembles with and without the MM field input on frames of a separate
    trajectory (never trained on) and on the held-out test split of the training labels, plus the
    environment scan (:mod:`mlmm.model.environment_scan`) on the first separate-trajectory frame."""
    from mlmm.engines.pyscf_qmmm import check_level
    from mlmm.frames import read_frames
    from mlmm.model.ensemble import Ensemble
    from mlmm.model.environment_scan import environment_scan
    from mlmm.model.plots import plot_environment_scan
    from mlmm.potentials import ensemble_term

    terms = {}  # QM terms of the scan: baseline + correction for Δ-trained members
    arms = {}
    closest = closest_mm_distances(heldout_db)
    for name, models in (("with_field", field_models), ("without_field", nofield_models)):
        ensemble = Ensemble.load_for(list(models), training.device)
        terms[name] = ensemble_term(ensemble)
        separate = ensemble.evaluate_db(heldout_db)
        arms[name] = AblationArm(
            separate_trajectory=SeparateTrajectoryErrors(
                **ModelErrors.of(separate).to_dict(), **energy_error_analysis(separate["energy_error"], closest)),
            test_split=ModelErrors.of(_held_out(models, dbs, training)),
        )
    scan = environment_scan(read_frames(heldout_frames)[0], check_level(level), terms)
    plot_environment_scan(scan, scan_png)
    with_field, without_field = arms["with_field"].separate_trajectory, arms["without_field"].separate_trajectory
    improves = {
        k: getattr(with_field, k) < getattr(without_field, k)
        for k in ("energy_mae", "force_mae_qm", "force_mae_mm")
        if getattr(with_field, k) is not None and getattr(without_field, k) is not None
    }
    result = FieldAblation(units={"energy": "eV", "force": "eV/Ang"}, with_field=arms["with_field"],
                           without_field=arms["without_field"], environment_scan=scan, field_improves=improves)
    log.info("field ablation: %s", result.to_dict())
    return result
