"""Calibration of σ against the true force error, and the training stage functions that report it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlmm.model.calibration import calibrate
from mlmm.model.nn import build_model
from mlmm.model.stages import TrainingPlots, calibrate_ensemble, training_plots
from mlmm.model.train import MemberMetrics
from test_delta import write_labels_db
from test_training import EMBEDDING, SETTINGS, water_in_charges


def test_calibrate_proportional_errors():
    """err = 2.5 σ exactly: ρ = 1 and scale = 2.5 (both estimators)."""
    sigma = np.linspace(0.05, 0.6, 12)
    result = calibrate(sigma, 2.5 * sigma)
    assert result.spearman_rho == pytest.approx(1.0)
    assert result.scale == pytest.approx(2.5) and result.scale_median == pytest.approx(2.5)


def test_calibrate_noise_and_anticorrelation():
    """σ unrelated to the error: |ρ| small; σ ranking frames backwards: ρ = -1; least squares scale."""
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.1, 1.0, 400)
    noise = calibrate(sigma, rng.uniform(0.1, 1.0, 400))
    assert abs(noise.spearman_rho) < 0.15
    backwards = calibrate(sigma, 1.0 / sigma)
    assert backwards.spearman_rho == pytest.approx(-1.0)
    s, e = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0])
    assert calibrate(s, e).scale == pytest.approx((1 + 2 + 12) / 14.0)


def test_calibrate_too_few_frames():
    """Fewer than 3 frames: no ρ, scale 1 (uncalibrated) with a note."""
    result = calibrate([0.1, 0.2], [0.3, 0.1])
    assert result.spearman_rho is None and result.scale == 1.0 and "uncalibrated" in result.note
    with pytest.raises(ValueError):
        calibrate([0.1, 0.2], [0.3])


def test_calibration_stage_and_plots(tmp_path):
    """calibration.json on a real labels DB (the test set); the report figures are written."""
    rng = np.random.default_rng(5)
    db = tmp_path / "labels.db"
    write_labels_db(db, [water_in_charges(rng, distortion_ang=0.08) for _ in range(24)])
    paths = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        model = build_model(SETTINGS, qm_charge_e=0, embedding=EMBEDDING)
        path = tmp_path / f"m{seed}.pt"
        torch.save(model, path)
        paths.append(str(path))
        errors = dict.fromkeys(f"{split}_{key}" for split in ("train", "val")
                               for key in ("energy_mae", "force_mae_qm", "force_mae_mm"))
        MemberMetrics(**errors, n_train=12, n_train_unique=12, n_val=0, epochs=3, val_losses=[3.0, 2.0, 1.5],
                      train_losses=[4.0, 2.5, 1.2], warm_started_from=None, best_val_loss=1.5, seconds=1.0,
                      n_parameters=sum(p.numel() for p in model.parameters()), seed=seed, energy_reference={},
                      settings=SETTINGS.to_dict(), num_threads=1, units={"energy": "eV", "force": "eV/Ang"},
                      member=seed).to_json(tmp_path / f"m{seed}.json")
    cfg = SETTINGS
    out = tmp_path / "calibration.json"
    calibrate_ensemble(paths, str(db), cfg, 0).to_json(out)
    result = json.loads(out.read_text())
    assert result["n_frames"] == len(result["sigma_force"]) == len(result["max_force_error"]) >= 3
    assert result["iteration"] == 0 and result["scale"] > 0 and result["spearman_rho"] is not None
    assert min(result["sigma_force"]) > 0  # different random members disagree
    pngs = [tmp_path / f"{n}.png" for n in ("learning", "parity", "calibration")]
    training_plots([str(tmp_path / f"m{s}.json") for s in range(3)], paths, str(db), [str(out)], cfg,
                   *map(str, pngs), str(tmp_path / "plots.json"))
    for png in pngs:
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    index = TrainingPlots.from_json(tmp_path / "plots.json")
    assert index.n_test == result["n_frames"] == 24 and index.parity == str(pngs[1])
