"""Training one ensemble member with schnetpack (AtomisticTask + Lightning) on labels DBs.

Splits: the labels are split into train/val with the member's ``seed`` (members see different
validation frames and, with ``bootstrap``, different bootstrap resamples of the rest). Test errors
are not taken here: the run's fixed test set (``test_set``, its own trajectories, never trained on)
is evaluated by :func:`mlmm.model.stages.evaluate_ensemble`.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from ase.db import connect
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.loggers import CSVLogger
from schnetpack import properties
from schnetpack.data import AtomsLoader
from schnetpack.task import AtomisticTask, ModelOutput
from schnetpack.train import ModelCheckpoint
from torchmetrics import MeanAbsoluteError

from mlmm.frames import atomic_write
from mlmm.labeling.db import db_embedding
from mlmm.model.device import lightning_accelerator, resolve_device
from mlmm.model.ensemble import Ensemble, db_dataset, load_model
from mlmm.model.nn import (
    FORCES_MM,
    FORCES_QM,
    build_model,
    fit_energy_reference,
    split_force_targets,
)
from mlmm.records import Record, optional
from mlmm.settings import TrainingSettings

log = logging.getLogger(__name__)


@dataclass
class MemberMetrics(Record):
    """``models/it{i}/member{m}.json`` (and ``metrics.json`` in the member's log folder): one trained
    member. Errors of the best model on its train/val split (MAEs in eV and eV/Å; None
    without frames in the split), split sizes (``n_train`` counts bootstrap repeats,
    ``n_train_unique`` the distinct frames), epochs, per-epoch losses (weighted MSE, eV² and
    (eV/Å)²), the best validation loss, wall time (s), parameter count, the member's seed, the
    fitted energy reference, the training settings and threads. ``iteration``/``member`` are set by
    the training stage; ``carried_forward_from`` names the previous member's model when an
    iteration without new labels kept it unchanged."""

    train_energy_mae: float | None
    train_force_mae_qm: float | None
    train_force_mae_mm: float | None
    val_energy_mae: float | None
    val_force_mae_qm: float | None
    val_force_mae_mm: float | None
    n_train: int
    n_train_unique: int
    n_val: int
    epochs: int
    val_losses: list[float]
    train_losses: list[float]
    warm_started_from: str | None
    best_val_loss: float
    seconds: float
    n_parameters: int
    seed: int
    energy_reference: dict[str, Any]
    settings: dict[str, Any]
    num_threads: int
    units: dict[str, str]
    iteration: int | None = optional()
    member: int | None = optional()
    carried_forward_from: str | None = optional()

#: Learning-rate schedules: ReduceLROnPlateau on val_loss, cosine decay to MIN_LR over max_epochs, constant.
LR_SCHEDULES = ("plateau", "cosine", "constant")
#: ReduceLROnPlateau: halve the learning rate after patience // 2 epochs without improvement.
LR_FACTOR = 0.5
MIN_LR = 1.0e-6


def merge_dbs(db_paths: Sequence[str | Path], out_path: str | Path) -> str:
    """Concatenate labels DBs (same units) into a new schnetpack DB at ``out_path``."""
    metadata = [connect(str(p), use_lock_file=False).metadata for p in db_paths]
    for p, md in zip(db_paths, metadata):
        for key in ("_distance_unit", "_property_unit_dict"):
            if md.get(key) != metadata[0].get(key):
                raise ValueError(f"{p}: {key} {md.get(key)} differs from {db_paths[0]}: {metadata[0].get(key)}")
    with connect(str(out_path), use_lock_file=False) as dst:
        dst.metadata = metadata[0]
        for p in db_paths:
            for row in connect(str(p), use_lock_file=False).select():
                dst.write(row.toatoms(), key_value_pairs=row.key_value_pairs, data=row.data)
    return str(out_path)


def prepare_db(db_paths: Sequence[str | Path], workdir: str | Path) -> str:
    """The DB to train on: the single input itself, or a merged copy in ``workdir``."""
    if not db_paths:
        raise ValueError("no labels DB given")
    if len(db_paths) == 1:
        return str(db_paths[0])
    return merge_dbs(db_paths, Path(workdir) / "merged.db")


def db_qm_charge(db_path: str | Path) -> int:
    """The total charge (e) of the QM region shared by all rows of a labels DB.

    The model constrains its atomic charges to sum to it; a DB mixing QM charges cannot train one model.
    """
    charges = {int(row.get("qm_charge", 0)) for row in connect(str(db_path), use_lock_file=False).select()}
    if len(charges) > 1:
        raise ValueError(f"{db_path}: rows have different qm_charge values {sorted(charges)}; one model needs one")
    return charges.pop() if charges else 0


def split_indices(db_path: str | Path, *, seed: int, training: TrainingSettings) -> tuple[list[int], list[int]]:
    """(train, val) rows of ``db_path``: a seeded permutation gives ≥ 1 val row; with
    ``training.bootstrap`` the train rows are a same-size resample with replacement of the rest
    (sorted, with repeats), so members differ in what they are fitted to."""
    n = connect(str(db_path), use_lock_file=False).count()
    if n < 2:
        raise ValueError(f"{db_path}: {n} labelled frame(s); need ≥ 2 for train and val")
    rng = np.random.default_rng(seed)
    rest = rng.permutation(n)
    n_val = min(max(1, int(round(training.val_fraction * n))), n - 1)
    train = rest[n_val:]
    if training.bootstrap:
        train = rng.choice(train, size=len(train), replace=True)
    return sorted(train.tolist()), sorted(rest[:n_val].tolist())


def _read_val_losses(csv_path: Path) -> list[float]:
    """Per-epoch validation losses from Lightning's CSV log."""
    return _read_epoch_column(csv_path, "val_loss")


def _read_epoch_column(csv_path: Path, column: str) -> list[float]:
    """Per-epoch means of a column of Lightning's CSV log (train_loss is logged per step)."""
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(",")
    if column not in header or "epoch" not in header:
        return []
    col, ep = header.index(column), header.index("epoch")
    per_epoch: dict[int, list[float]] = {}
    for v in (line.split(",") for line in lines[1:]):
        if v[col]:
            per_epoch.setdefault(int(float(v[ep])), []).append(float(v[col]))
    return [float(np.mean(per_epoch[e])) for e in sorted(per_epoch)]


def _scheduler(s: TrainingSettings) -> dict[str, Any]:
    """AtomisticTask keyword arguments of the learning-rate schedule ``s.lr_schedule``."""
    if s.lr_schedule == "plateau":
        return {
            "scheduler_cls": torch.optim.lr_scheduler.ReduceLROnPlateau,
            "scheduler_args": {"factor": LR_FACTOR, "patience": max(1, s.patience // 2), "min_lr": MIN_LR},
            "scheduler_monitor": "val_loss",
        }
    if s.lr_schedule == "cosine":  # stepped once per epoch by Lightning
        return {
            "scheduler_cls": torch.optim.lr_scheduler.CosineAnnealingLR,
            "scheduler_args": {"T_max": max(1, int(s.max_epochs)), "eta_min": MIN_LR},
        }
    if s.lr_schedule == "constant":
        return {}
    raise ValueError(f"unknown lr_schedule {s.lr_schedule!r}; known: {LR_SCHEDULES}")


def _warm_start(model: torch.nn.Module, init_from: str | Path) -> bool:
    """Copy weights and energy reference of a previous member into ``model`` if the architectures match."""
    previous = load_model(init_from, "cpu")  # the fresh model is still on the CPU here
    same = previous.mlmm_settings == model.mlmm_settings and {
        k: v.shape for k, v in previous.state_dict().items()
    } == {k: v.shape for k, v in model.state_dict().items()}
    if not same:
        log.warning("warm start skipped: %s has a different architecture", init_from)
        return False
    model.load_state_dict(previous.state_dict())
    return True


def train_member(
    db_paths: Sequence[str],
    model_out: str,
    *,
    seed: int,
    settings: TrainingSettings,
    log_dir: str,
    num_threads: int,
    init_from: str | None = None,
) -> MemberMetrics:
    """Train one member on the labels DBs and save the best model (``torch.save``) to ``model_out``.

    Loss: ``energy_weight`` · MSE(E) + ``forces_weight`` · MSE(F on QM atoms) + ``mm_forces_weight`` ·
    MSE(F on MM sites) (separate terms, see :class:`mlmm.model.nn.SplitForces`); Adam with the
    ``lr_schedule`` and early stopping on the validation loss; the best epoch is kept. With
    ``warm_start`` and ``init_from`` (the previous iteration's member) training starts from those
    weights instead of a fresh initialisation. ``device`` (``training.device``: auto | cpu | cuda)
    is where training and the final evaluation run; the saved model is on the CPU and loads on
    any device. The model's field input uses the embedding the labels were computed in (the
    frames' ``system.embedding``, :func:`mlmm.labeling.db.db_embedding`), stored on the model. ``delta`` names the baseline the DBs' labels are corrections to; it is stored on
    the model so MD uses the ``delta`` potential (:mod:`mlmm.potentials`). Returns (and
    writes to ``log_dir``/metrics.json) the member's :class:`MemberMetrics`. Lightning's CSV
    log and best checkpoint also go to ``log_dir``. The member's seed is ``seed`` (not
    ``settings.seed``, the ensemble's base seed).
    """
    t0 = time.perf_counter()
    s = settings
    device = resolve_device(s.device)
    log_path = Path(log_dir)
    log_path.mkdir(parents=True, exist_ok=True)
    Path(model_out).parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(num_threads))
    pl.seed_everything(seed, verbose=False)
    with tempfile.TemporaryDirectory(dir=Path(model_out).parent, prefix=".train_work_") as workdir:
        db_path = prepare_db(db_paths, workdir)
        train_idx, val_idx = split_indices(db_path, seed=seed, training=s)
        log.info("member seed %d: %d train (%d distinct), %d val frames on %s", seed, len(train_idx),
                 len(set(train_idx)), len(val_idx), device)
        data = db_dataset(db_path, s.cutoff)
        train_frames = [split_force_targets(data[i]) for i in train_idx]
        val_frames = [split_force_targets(data[i]) for i in val_idx]

        embedding = db_embedding(db_path)
        if embedding is None:
            raise ValueError(f"{list(db_paths)}: no labelled frames to train on")
        model = build_model(s, qm_charge_e=db_qm_charge(db_path), embedding=embedding)
        reference = fit_energy_reference(model, train_frames)
        warm = bool(s.warm_start and init_from and _warm_start(model, init_from))
        outputs = [
            ModelOutput(properties.energy, torch.nn.MSELoss(), s.energy_weight, {"MAE": MeanAbsoluteError()}),
            ModelOutput(FORCES_QM, torch.nn.MSELoss(), s.forces_weight, {"MAE": MeanAbsoluteError()}),
            ModelOutput(FORCES_MM, torch.nn.MSELoss(), s.mm_forces_weight, {"MAE": MeanAbsoluteError()}),
        ]
        task = AtomisticTask(
            model,
            outputs,
            optimizer_cls=torch.optim.Adam,
            optimizer_args={"lr": s.lr},
            **_scheduler(s),
        )
        best_path = log_path / "best_model.pt"
        best_path.unlink(missing_ok=True)  # never pick up a stale model from an earlier run
        checkpoint = ModelCheckpoint(
            model_path=str(best_path), dirpath=str(log_path / "checkpoints"), filename="best",
            monitor="val_loss", mode="min", save_top_k=1,
        )
        logger = CSVLogger(save_dir=str(log_path), name="", version="")
        trainer = pl.Trainer(
            accelerator=lightning_accelerator(device), devices=1, max_epochs=s.max_epochs, inference_mode=False,
            callbacks=[checkpoint, EarlyStopping("val_loss", patience=s.patience, mode="min")],
            logger=logger, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, log_every_n_steps=1,
        )
        loader_rng = torch.Generator().manual_seed(seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            trainer.fit(
                task,
                AtomsLoader(train_frames, batch_size=s.batch_size, shuffle=True, generator=loader_rng),
                AtomsLoader(val_frames, batch_size=s.batch_size),
            )

        best = load_model(best_path, device)
        errors = {}
        for name, idx in (("train", sorted(set(train_idx))), ("val", val_idx)):
            r = Ensemble([best], device).evaluate_db(db_path, idx) if idx else {}
            for key in ("energy_mae", "force_mae_qm", "force_mae_mm"):
                errors[f"{name}_{key}"] = r.get(key)
    best = best.cpu()  # saved from the CPU: the file does not depend on where it was trained
    atomic_write(model_out, lambda tmp: torch.save(best, tmp))
    metrics = MemberMetrics(
        **errors,
        n_train=len(train_idx),
        n_train_unique=len(set(train_idx)),
        n_val=len(val_idx),
        epochs=int(trainer.current_epoch),
        val_losses=_read_val_losses(Path(logger.log_dir) / "metrics.csv"),
        train_losses=_read_epoch_column(Path(logger.log_dir) / "metrics.csv", "train_loss"),
        warm_started_from=str(init_from) if warm else None,
        best_val_loss=float(checkpoint.best_model_score),
        seconds=time.perf_counter() - t0,
        n_parameters=sum(p.numel() for p in best.parameters()),
        seed=seed,
        energy_reference=reference,
        settings=s.to_dict(),
        num_threads=int(num_threads),
        units={"energy": "eV", "force": "eV/Ang"},
    )
    metrics.to_json(log_path / "metrics.json")
    log.info("member seed %d done: %s", seed, {k: v for k, v in metrics.to_dict().items() if k != "settings"})
    return metrics
