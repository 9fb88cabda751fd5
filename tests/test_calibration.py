"""Calibration of σ against the true force error, and the training stage functions that report it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlmm.model.calibration import Calibration, SigmaMap, calibrate
from mlmm.model.nn import build_model
from mlmm.model.stages import TrainingPlots, calibrate_ensemble, training_plots
from mlmm.model.train import MemberMetrics
from test_delta import write_labels_db
from test_training import EMBEDDING, SETTINGS, water_in_charges


def test_calibrate_proportional_errors():
    """err = 2.5 σ exactly: ρ = 1, scale = 2.5 (both estimators), the map is 2.5 σ inside and
    beyond the data, and every out-of-fold error ratio is 1 (q = 1, all frames covered)."""
    sigma = np.linspace(0.05, 0.6, 12)
    result = calibrate(sigma, 2.5 * sigma)
    assert result.spearman_rho == pytest.approx(1.0)
    assert result.scale == pytest.approx(2.5) and result.scale_median == pytest.approx(2.5)
    x = np.array([0.0, 0.01, 0.3, 0.6, 2.0])
    assert result.apply(x) == pytest.approx(2.5 * x)
    assert result.conformal_q == pytest.approx(1.0) and result.coverage_oof == 1.0
    assert result.folds == 5 and result.conformal_level == 0.9


def test_calibrate_noise_and_anticorrelation():
    """σ unrelated to the error: |ρ| small; σ ranking frames backwards: ρ = -1 and the isotonic
    map is one block (the mean error) from the origin; least squares scale."""
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.1, 1.0, 400)
    noise = calibrate(sigma, rng.uniform(0.1, 1.0, 400))
    assert abs(noise.spearman_rho) < 0.15
    backwards = calibrate(sigma, 1.0 / sigma)
    assert backwards.spearman_rho == pytest.approx(-1.0)
    assert backwards.map_sigma == pytest.approx([0.0, sigma.mean()])
    assert backwards.map_error == pytest.approx([0.0, (1.0 / sigma).mean()])
    s, e = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0])
    assert calibrate(s, e).scale == pytest.approx((1 + 2 + 12) / 14.0)


def test_calibrate_too_few_frames():
    """Fewer than 3 frames: no ρ, scale 1 and the identity map (uncalibrated) with a note, no bound."""
    result = calibrate([0.1, 0.2], [0.3, 0.1])
    assert result.spearman_rho is None and result.scale == 1.0 and "uncalibrated" in result.note
    assert result.map_sigma is None and result.conformal_q is None
    x = np.array([0.0, 0.3, 5.0])
    assert result.apply(x) == pytest.approx(x) and result.inverse(x) == pytest.approx(x)
    with pytest.raises(ValueError, match="no conformal bound: uncalibrated"):
        result.upper_bound(x)
    with pytest.raises(ValueError):
        calibrate([0.1, 0.2], [0.3])


def _half_normal_errors(rng: np.random.Generator, n: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    """σ ~ U(0.05, 0.5) eV/Å and err = c·σ·|N(0, 1)|, so E[err | σ] = c σ sqrt(2/π)."""
    sigma = rng.uniform(0.05, 0.5, n)
    return sigma, c * sigma * np.abs(rng.standard_normal(n))


def test_map_recovers_the_conditional_mean_and_the_bound_covers():
    """Known model err = 2 σ |N(0,1)|: the map is strictly increasing, follows E[err|σ] = 2σ·sqrt(2/π)
    within 10 % inside the data, its conformal bound covers 90 % ± 3 % of fresh frames (and of
    the calibration frames out of fold), the reliability curve lies on the diagonal, and
    inverse(apply(σ)) = σ, also beyond the last knot."""
    c = 2.0
    rng = np.random.default_rng(17)
    result = calibrate(*_half_normal_errors(rng, 4000, c))
    assert np.all(np.diff(result.map_sigma) > 0) and np.all(np.diff(result.map_error) > 0)
    grid = np.linspace(0.1, 0.45, 15)
    deviation = result.apply(grid) / (c * grid * np.sqrt(2 / np.pi)) - 1  # isotonic: noisy point by point
    assert np.mean(np.abs(deviation)) < 0.06 and np.max(np.abs(deviation)) < 0.2
    fresh_sigma, fresh_error = _half_normal_errors(rng, 4000, c)
    assert np.mean(fresh_error <= result.upper_bound(fresh_sigma)) == pytest.approx(0.9, abs=0.03)
    assert result.coverage_oof == pytest.approx(0.9, abs=0.03)
    # half-normal: the 90 % quantile of |N| over its mean, 1.645 / 0.798
    assert result.conformal_q == pytest.approx(1.6449 / np.sqrt(2 / np.pi), rel=0.05)
    reliability = result.reliability
    assert len(reliability["n"]) == 10 and sum(reliability["n"]) == 4000
    assert reliability["observed"] == pytest.approx(reliability["predicted"], rel=0.15)
    x = np.r_[0.0, grid, 0.7, 3.0]
    assert result.inverse(result.apply(x)) == pytest.approx(x, abs=1e-12)
    assert result.apply(result.inverse(np.array([0.05, 0.5, 1.0, 5.0]))) == pytest.approx([0.05, 0.5, 1.0, 5.0])
    assert result.apply(3.0) == pytest.approx(result.map_error[-1] + result.scale * (3.0 - result.map_sigma[-1]))


def test_map_follows_a_nonlinear_error():
    """E[err|σ] = 4 σ² (eV/Å): the isotonic map follows the curve where the through-origin scale cannot."""
    rng = np.random.default_rng(3)
    sigma = rng.uniform(0.05, 0.5, 3000)
    error = 4 * sigma**2 * np.abs(rng.standard_normal(3000)) / np.sqrt(2 / np.pi)
    result = calibrate(sigma, error)
    grid = np.linspace(0.1, 0.45, 15)
    assert np.mean(np.abs(result.apply(grid) / (4 * grid**2) - 1)) < 0.1
    assert np.mean(np.abs(result.scale * grid / (4 * grid**2) - 1)) > 0.3


def test_sigma_map_refuses_maps_without_an_inverse():
    """A map must be strictly increasing with a positive slope beyond its knots."""
    with pytest.raises(ValueError, match="strictly increasing"):
        SigmaMap(1.0, (0.0, 0.1, 0.2), (0.0, 0.3, 0.3))
    with pytest.raises(ValueError, match="scale must be a positive number"):
        SigmaMap(0.0)
    with pytest.raises(ValueError, match="map knots"):
        SigmaMap(1.0, (0.0, 0.1), (0.0,))


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
    assert len(result["map_sigma"]) == len(result["map_error"]) >= 2 and result["conformal_q"] > 0
    assert 0 <= result["coverage_oof"] <= 1 and sum(result["reliability"]["n"]) == result["n_frames"]
    stored = Calibration.from_json(out)
    assert stored.apply(result["sigma_force"]) == pytest.approx(
        calibrate(result["sigma_force"], result["max_force_error"]).apply(result["sigma_force"]))
    pngs = [tmp_path / f"{n}.png" for n in ("learning", "parity", "calibration")]
    training_plots([str(tmp_path / f"m{s}.json") for s in range(3)], paths, str(db), [str(out)], cfg,
                   *map(str, pngs), str(tmp_path / "plots.json"))
    for png in pngs:
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    index = TrainingPlots.from_json(tmp_path / "plots.json")
    assert index.n_test == result["n_frames"] == 24 and index.parity == str(pngs[1])
