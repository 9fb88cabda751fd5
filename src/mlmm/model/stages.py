"""Stage functions of the training rules (paths in, paths out)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlmm.frames import atomic_write
from mlmm.jobs import read_json, selection_record, set_threads, write_json
from mlmm.logutil import setup_logging

log = logging.getLogger(__name__)


def train_member(
    dbs: Sequence[str],
    iteration: int,
    member: int,
    training_cfg: dict[str, Any],
    selection: Sequence[str],
    previous_model: Sequence[str],
    model_out: str,
    metrics_out: str,
    log_dir: str,
    log_path: str,
    threads: int = 1,
) -> None:
    """Train ensemble member ``member`` of iteration ``iteration`` on all labels so far.

    When the iteration added no labels (converged, or nothing in the trust window) the
    previous member is carried forward unchanged instead of retraining on identical data.
    """
    setup_logging(log_path)
    set_threads(threads)
    record = selection_record(selection)
    if record is not None and record["n_selected"] == 0 and previous_model:
        log.info("iteration %d added no labels (%s): carrying %s forward", iteration, record["reason"], previous_model[0])
        atomic_write(model_out, lambda tmp: shutil.copyfile(previous_model[0], tmp))
        metrics = read_json(Path(previous_model[0]).with_suffix(".json"))
        metrics["carried_forward_from"] = previous_model[0]
        write_json(metrics_out, metrics)
        return
    from mlmm.config import training_settings
    from mlmm.model.train import train_member as run

    metrics = run(
        list(dbs),
        model_out,
        seed=training_cfg["seed"] + member,
        settings=training_settings(training_cfg, threads),
        log_dir=log_dir,
    )
    metrics.update(iteration=iteration, member=member)
    write_json(metrics_out, metrics)


def evaluate_ensemble(
    models: Sequence[str], dbs: Sequence[str], training_cfg: dict[str, Any], out: str, log_path: str, threads: int = 1
) -> None:
    """Ensemble MAEs on the held-out test frames (identical for all members, never trained on)."""
    setup_logging(log_path)
    set_threads(threads)
    from mlmm.model.ensemble import Ensemble
    from mlmm.model.train import held_out_test_set

    ensemble = Ensemble.load(list(models))
    db_path, test_idx, workdir = held_out_test_set(list(dbs), test_fraction=training_cfg["test_fraction"])
    try:
        result = ensemble.evaluate_db(db_path, indices=test_idx) if len(test_idx) else {}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {k: v for k, v in result.items() if not isinstance(v, (list, np.ndarray))}
    result.update(n_test=len(test_idx), models=list(models))
    log.info("ensemble test errors: %s", result)
    write_json(out, result)
