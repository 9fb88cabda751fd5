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
    """``models/it{i}/ensemble.json``: errors on the run's fixed test set (``test_set``, never trained on).

    MAEs in eV (energy) and eV/Å (forces on QM and on MM atoms) of the ensemble mean, and the
    QM-force MAE of each member alone (``member_force_mae_qm``, in ``models`` order); None
    without test frames. The same frames for every iteration, so the errors are comparable.
    """

    n_frames: int | None = None
    energy_mae: float | None = None
    force_mae_qm: float | None = None
    force_mae_mm: float | None = None
    n_test: int = 0
    models: list[str] | None = None
    member_force_mae_qm: list[float] | None = None
    test_set: str | None = None


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


def evaluate_ensemble(models: Sequence[str], test_db: str, training: TrainingSettings) -> EnsembleEvaluation:
    """Ensemble and per-member MAEs on the fixed test set ``test_db``; members run on ``training.device``."""
    from mlmm.model.ensemble import Ensemble

    result = Ensemble.load_for(list(models), training.device).evaluate_db(test_db)
    errors = {k: result[k] for k in ("n_frames", "energy_mae", "force_mae_qm", "force_mae_mm", "member_force_mae_qm")}
    evaluation = EnsembleEvaluation(**errors, n_test=int(result["n_frames"]), models=list(models), test_set=str(test_db))
    log.info("ensemble errors on the fixed test set: %s", evaluation)
    return evaluation


def delta_labels(labels_db: str, baseline: str, out_db: str, stats_out: str) -> None:
    """Labels DB of corrections reference − baseline (Δ-learning) and the baseline's errors."""
    from mlmm.model.baseline import write_delta_db

    write_delta_db(labels_db, out_db, baseline).to_json(stats_out)


def _on_test_set(models: Sequence[str], test_db: str, training: TrainingSettings) -> dict[str, Any]:
    """Ensemble evaluation (with per-atom arrays) on the fixed test set ``test_db``, on ``training.device``."""
    from mlmm.model.ensemble import Ensemble

    result = Ensemble.load_for(list(models), training.device).evaluate_db(test_db, return_arrays=True)
    result["n_test"] = int(result.get("n_frames") or 0)
    return result


def calibrate_ensemble(models: Sequence[str], test_db: str, training: TrainingSettings, iteration: int) -> Calibration:
    """models/it{i}/calibration.json: σ vs max force error on the fixed test set ``test_db``."""
    from mlmm.model.calibration import calibrate

    result = _on_test_set(models, test_db, training)
    calibration = calibrate(result.get("sigma_force", []), result.get("max_force_error", []))
    calibration.iteration = iteration
    calibration.sigma_force = [float(v) for v in result.get("sigma_force", [])]
    calibration.max_force_error = [float(v) for v in result.get("max_force_error", [])]
    calibration.frames = f"the fixed test set {test_db} (own trajectories, never trained on)"
    log.info("calibration it%d: rho %s, scale %.3f on %d frames", iteration, calibration.spearman_rho,
             calibration.scale, calibration.n_frames)
    return calibration


@dataclass
class TrainingPlots(Record):
    """``plots/training_plots.json`` (the summary's ``training_plots``): paths of the learning-curve,
    parity and calibration PNGs and the number of test-set frames of the parity plots."""

    learning_curves: str
    parity: str
    calibration: str
    n_test: int


def training_plots(
    metrics: Sequence[str], models: Sequence[str], test_db: str, calibrations: Sequence[str],
    training: TrainingSettings, learning_png: str, parity_png: str, calibration_png: str,
    index_out: str,
) -> None:
    """Learning curves of every member, parity plots (energy, QM forces, MM forces) on the fixed
    test set, and σ vs error per AL iteration, as PNGs for the report."""
    from mlmm.model.calibration import Calibration
    from mlmm.model.plots import plot_calibration, plot_learning_curves, plot_parity
    from mlmm.model.train import MemberMetrics

    plot_learning_curves([MemberMetrics.from_json(m) for m in metrics], learning_png)
    test = _on_test_set(models, test_db, training)
    plot_parity(test, parity_png)
    plot_calibration([Calibration.from_json(c) for c in calibrations], calibration_png)
    TrainingPlots(learning_png, parity_png, calibration_png, test["n_test"]).to_json(index_out)


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
class TestSetErrors(ModelErrors):
    """:class:`ModelErrors` on the fixed test set plus :func:`energy_error_analysis` of the energy error."""

    mean_error: float
    offset_free_mae: float
    rho_closest_mm: float


@dataclass
class AblationArm(Record):
    """One ensemble of the field ablation: its errors on the fixed test set."""

    test_set: TestSetErrors = nested(TestSetErrors)


@dataclass
class FieldAblation(Record):
    """``ablation/field_ablation.json``: the ensembles with and without the MM field input, the
    environment scan (:func:`mlmm.model.environment_scan.environment_scan`) and, per error, whether
    the field makes it smaller on the fixed test set."""

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
    field_models: Sequence[str], nofield_models: Sequence[str], test_db: str, test_frames: str,
    training: TrainingSettings, level: LevelSettings, scan_png: str,
) -> FieldAblation:
    """Errors (eV, eV/Å) of the ensembles with and without the MM field input on the fixed test set
    ``test_db`` (own trajectories, never trained on), plus the environment scan
    (:mod:`mlmm.model.environment_scan`) on the first test frame (``test_frames``, unlabelled Frames)."""
    from mlmm.engines.pyscf_qmmm import check_level
    from mlmm.frames import read_frames
    from mlmm.model.ensemble import Ensemble
    from mlmm.model.environment_scan import environment_scan
    from mlmm.model.plots import plot_environment_scan
    from mlmm.potentials import ensemble_term

    terms = {}  # QM terms of the scan: baseline + correction for Δ-trained members
    arms = {}
    closest = closest_mm_distances(test_db)
    for name, models in (("with_field", field_models), ("without_field", nofield_models)):
        ensemble = Ensemble.load_for(list(models), training.device)
        terms[name] = ensemble_term(ensemble)
        test = ensemble.evaluate_db(test_db)
        arms[name] = AblationArm(test_set=TestSetErrors(
            **ModelErrors.of(test).to_dict(), **energy_error_analysis(test["energy_error"], closest)))
    scan = environment_scan(read_frames(test_frames)[0], check_level(level), terms)
    plot_environment_scan(scan, scan_png)
    with_field, without_field = arms["with_field"].test_set, arms["without_field"].test_set
    improves = {
        k: getattr(with_field, k) < getattr(without_field, k)
        for k in ("energy_mae", "force_mae_qm", "force_mae_mm")
        if getattr(with_field, k) is not None and getattr(without_field, k) is not None
    }
    result = FieldAblation(units={"energy": "eV", "force": "eV/Ang"}, with_field=arms["with_field"],
                           without_field=arms["without_field"], environment_scan=scan, field_improves=improves)
    log.info("field ablation: %s", result.to_dict())
    return result
