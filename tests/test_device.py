"""training.device: resolution (auto | cpu | cuda), training and inference on the resolved device, and
saved members that give the same predictions after loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dataclasses import replace

from conftest import config_with
from mlmm.model.device import lightning_accelerator, resolve_device
from mlmm.model.ensemble import Ensemble, load_model
from mlmm.model.stages import evaluate_ensemble
from mlmm.model.train import prepare_db, split_indices, train_member
from test_training import SETTINGS, water_in_charges, write_labels_db

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")


def test_device_setting_is_in_the_schema_with_default_auto():
    config = config_with()
    assert config["training"]["device"] == "auto"
    assert SETTINGS.device == "auto"


def test_auto_takes_the_gpu_only_when_torch_sees_one(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and lightning_accelerator(resolve_device("auto")) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda") and lightning_accelerator(torch.device("cuda")) == "gpu"
    with pytest.raises(ValueError, match=r"training.device: expected one of \['auto', 'cpu', 'cuda'\], got 'gpu'"):
        resolve_device("gpu")


@no_gpu
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    """Asked for CUDA where torch sees no GPU: one error naming the setting, from the resolver and
    from a stage that evaluates members (device taken from the training section)."""
    with pytest.raises(RuntimeError, match="training.device: 'cuda' requested but torch sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match="training.device: 'cuda'"):
        evaluate_ensemble([], [], replace(SETTINGS, device="cuda"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One member trained with device ``auto`` (the CPU here, the GPU where torch sees one)."""
    root = tmp_path_factory.mktemp("device")
    rng = np.random.default_rng(5)
    frames = [water_in_charges(rng) for _ in range(12)]
    write_labels_db(root / "labels.db", frames)
    settings = replace(SETTINGS, max_epochs=3, device="auto")
    metrics = train_member([str(root / "labels.db")], str(root / "m.pt"), seed=0, settings=settings,
                           log_dir=str(root / "log"), num_threads=1)
    return {"root": root, "frames": frames, "metrics": metrics, "settings": settings}


def test_auto_trains_and_saved_member_predicts_the_same(trained):
    """``auto`` trains without a GPU; the saved member is on the CPU and, loaded on the resolved
    device, reproduces exactly the errors measured at the end of training."""
    device = resolve_device("auto")
    root, metrics = trained["root"], trained["metrics"]
    assert metrics.settings["device"] == "auto" and metrics.epochs >= 1
    saved = torch.load(root / "m.pt", map_location="cpu", weights_only=False)
    assert {p.device.type for p in saved.parameters()} == {"cpu"}
    ensemble = Ensemble.load([str(root / "m.pt")], device)
    assert ensemble.device == device and {p.device for p in ensemble.models[0].parameters()} == {device}
    db = prepare_db([str(root / "labels.db")], root)
    train, val = split_indices(db, seed=0, training=trained["settings"])
    for name, idx in (("train", train), ("val", val)):
        again = ensemble.evaluate_db(db, idx)
        for key in ("energy_mae", "force_mae_qm", "force_mae_mm"):
            assert again[key] == getattr(metrics, f"{name}_{key}")
    on_cpu = Ensemble([load_model(root / "m.pt", "cpu")]).compute(trained["frames"][0])
    here = ensemble.compute(trained["frames"][0])
    assert on_cpu["energy"] == pytest.approx(here["energy"], abs=1e-5)
    np.testing.assert_allclose(on_cpu["forces"], here["forces"], atol=1e-5)


@no_gpu
def test_cuda_training_without_a_gpu_stops_before_training(trained, tmp_path):
    with pytest.raises(RuntimeError, match="training.device: 'cuda'"):
        train_member([str(trained["root"] / "labels.db")], str(tmp_path / "m.pt"), seed=0,
                     settings=replace(trained["settings"], device="cuda"), log_dir=str(tmp_path / "log"),
                     num_threads=1)
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "log").exists()
