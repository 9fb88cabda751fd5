"""Training field-aware members on real HF/STO-3G electrostatic-embedding labels (PySCF).

Data: one QM water with thermal-like distortions in the point charges of two TIP3P waters placed
at random around it; labels are the QM/MM energy and the forces on QM atoms and MM charges.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from pyscf import gto, qmmm, scf
from scipy.spatial.transform import Rotation
from mlmm.embedding import frame_weights
from mlmm.frames import make_frame
from mlmm.labeling.db import write_label_db
from mlmm.labeling.ground_state import label_metadata
from mlmm.model.ensemble import Ensemble, db_dataset
from mlmm.model.nn import build_model, fit_energy_reference
from mlmm.model.train import held_out_test_set, split_indices, train_member
from mlmm.units import HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV
from conftest import embedding_with, level_with, settings_with

N_FRAMES = 40
WATER_ANG = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
TIP3P_CHARGES_E = np.array([-0.834, 0.417, 0.417])
#: Schema-default embedding (10 Å): the MM waters here (≤ 5.5 Å) all have weight 1.
EMBEDDING = embedding_with()
LEVEL = level_with(method="hf", basis="sto-3g", conv_tol=1e-10)
SETTINGS = settings_with(training={
    "n_atom_basis": 16, "n_interactions": 2, "n_rbf": 12, "cutoff": 4.0, "lr": 5.0e-3, "batch_size": 4,
    "max_epochs": 30, "patience": 30, "val_fraction": 0.2, "test_fraction": 0.15,
}).training


def hf_qmmm_label(qm_pos_ang: np.ndarray, mm_pos_ang: np.ndarray, mm_q_e: np.ndarray) -> tuple[float, np.ndarray]:
    """HF/STO-3G water in point charges: energy (eV) and forces (eV/Å) on the 3 QM atoms + MM charges."""
    mol = gto.M(atom=[(s, p) for s, p in zip("OHH", qm_pos_ang)], basis="sto-3g", unit="Angstrom", verbose=0)
    mf = qmmm.mm_charge(scf.RHF(mol), mm_pos_ang, mm_q_e, unit="Angstrom")
    mf.conv_tol = 1e-10
    energy = mf.kernel()
    assert mf.converged
    grad = mf.nuc_grad_method()
    g_qm = grad.kernel()
    g_mm = grad.grad_hcore_mm(mf.make_rdm1()) + grad.grad_nuc_mm()
    return energy * HARTREE_TO_EV, -np.vstack([g_qm, g_mm]) * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM


def water_in_charges(rng: np.random.Generator, distortion_ang: float = 0.04) -> Atoms:
    """A QM water (random distortion) with two TIP3P waters 2.9–4.5 Å away (O–O), as a Frame."""
    qm = WATER_ANG + rng.normal(scale=distortion_ang, size=(3, 3))
    mm = []
    for _ in range(2):
        direction = rng.normal(size=3)
        center = direction / np.linalg.norm(direction) * rng.uniform(2.9, 4.5)
        mm.append(Rotation.random(random_state=rng.integers(1 << 31)).apply(WATER_ANG) + center)
    return make_frame(
        ["O", "H", "H"], qm, ["O", "H", "H"] * 2, np.vstack(mm), np.tile(TIP3P_CHARGES_E, 2),
        mm_molecule=[0, 0, 0, 1, 1, 1], embedding=EMBEDDING, qm_charge=0, multiplicity=1, sampler="test", iteration=0, source="pyscf-test", seed=0,
    )


def write_labels_db(path: Path, frames: list[Atoms]) -> None:
    """HF/STO-3G labels (PySCF called directly, point charges) in the labels-DB contract of
    mlmm.labeling.db. All embedding weights are 1 here, so the raw charges are the weighted ones."""
    rows = []
    for frame in frames:
        mask = frame.arrays["qm_mask"]
        assert np.all(frame_weights(frame)[~mask] == 1.0)
        energy, forces = hf_qmmm_label(frame.positions[mask], frame.positions[~mask], frame.get_initial_charges()[~mask])
        props = {"energy": np.array([energy]), "forces": forces, "qm_mask": mask.astype(float),
                 "mm_charges": frame.get_initial_charges(), "mm_molecule": frame.arrays["mm_molecule"].astype(float)}
        rows.append((frame, props, label_metadata(frame, LEVEL)))
    write_label_db(path, rows, level=LEVEL.to_dict())


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> dict:
    """Two labels DBs (30 + 10 frames) so training also exercises merging."""
    rng = np.random.default_rng(7)
    frames = [water_in_charges(rng) for _ in range(N_FRAMES)]
    root = tmp_path_factory.mktemp("labels")
    paths = [root / "it0.db", root / "it1.db"]
    write_labels_db(paths[0], frames[:30])
    write_labels_db(paths[1], frames[30:])
    return {"paths": [str(p) for p in paths], "frames": frames, "root": root}


@pytest.fixture(scope="module")
def members(labels) -> list[dict]:
    """Two members trained with different seeds."""
    out = []
    for seed in (0, 1):
        workdir = labels["root"] / f"member{seed}"
        model_path = workdir / "model.pt"
        metrics = train_member(labels["paths"], str(model_path), seed=seed, settings=SETTINGS, log_dir=str(workdir / "log"),
                               num_threads=1)
        out.append({"metrics": metrics, "model": str(model_path), "log": workdir / "log"})
    return out


def test_pyscf_labels_are_consistent(labels):
    """Reference sanity: QM + MM forces sum to zero (translation invariance); MM charges feel real forces."""
    frame = labels["frames"][0]
    mask = frame.arrays["qm_mask"]
    _, forces = hf_qmmm_label(frame.positions[mask], frame.positions[~mask], frame.get_initial_charges()[~mask])
    assert np.abs(forces.sum(0)).max() < 1e-4  # translation invariance of QM + MM charges (eV/Å)
    assert np.abs(forces[3:]).max() > 1e-2  # MM charges feel real forces


def test_splits(labels, members):
    """Identical hash-based test split for every member; different train/val splits per seed."""
    db, test_idx, workdir = held_out_test_set(labels["paths"], SETTINGS)
    try:
        splits = [split_indices(db, seed=s, training=SETTINGS) for s in (0, 1)]
    finally:
        shutil.rmtree(workdir)
    assert splits[0][2] == splits[1][2] == test_idx and len(test_idx) > 0
    assert splits[0][1] != splits[1][1]
    for train, val, test in splits:
        assert not (set(train) & set(val)) and not (set(train) & set(test)) and not (set(val) & set(test))
        assert len(train) + len(val) + len(test) == N_FRAMES
    for m in members:
        assert m["metrics"].n_test == len(test_idx)
        assert m["metrics"].n_train + m["metrics"].n_val + m["metrics"].n_test == N_FRAMES


def test_training_reduces_errors(labels, members):
    """Trained members beat the untrained model (same E_ref fit) on val forces; the val loss drops."""
    db, _, workdir = held_out_test_set(labels["paths"], SETTINGS)
    try:
        for seed, m in enumerate(members):
            metrics = m["metrics"]
            train, val, _ = split_indices(db, seed=seed, training=SETTINGS)
            data = db_dataset(db, SETTINGS.cutoff)
            torch.manual_seed(seed)
            untrained = build_model(SETTINGS, qm_charge_e=0, embedding=EMBEDDING)
            fit_energy_reference(untrained, [data[i] for i in train])
            before = Ensemble([untrained.eval()]).evaluate_db(db, val)
            assert metrics.val_force_mae_qm < 0.5 * before["force_mae_qm"]
            assert metrics.val_energy_mae < before["energy_mae"]
            assert metrics.val_losses[-1] < 0.5 * metrics.val_losses[0]
            assert metrics.test_force_mae_qm is not None and metrics.test_force_mae_mm is not None
            # MM-site forces (small, ~0.04 eV/Å) are learned too: clearly better than predicting zero
            zero_mm = np.mean([data[i]["forces"][data[i]["qm_mask"] < 0.5].abs().mean().item() for i in val])
            assert metrics.val_force_mae_mm < 0.9 * zero_mm
            saved = json.loads((m["log"] / "metrics.json").read_text())
            assert saved["n_train"] == metrics.n_train and saved["units"]["energy"] == "eV"
    finally:
        shutil.rmtree(workdir)


def test_ensemble_uncertainty(labels, members):
    """Reloaded members: σ > 0 on training frames and far larger on a squeezed water never seen in training."""
    ensemble = Ensemble.load([m["model"] for m in members], "cpu")
    train_sigmas = [ensemble.compute(f)["sigma_force"] for f in labels["frames"][:10]]
    assert min(train_sigmas) > 0.0
    frame = labels["frames"][0].copy()
    frame.positions[1] = frame.positions[0] + [0.65, 0.0, 0.0]  # both O–H squeezed to 0.65 Å
    frame.positions[2] = frame.positions[0] + [-0.20, 0.62, 0.0]
    result = ensemble.compute(frame)
    assert result["sigma_force"] > 3.0 * max(train_sigmas)
    assert result["forces"].shape == (len(frame), 3) and result["member_forces"].shape == (2, len(frame), 3)
    assert np.isclose(result["energy"], np.mean(result["energies"]))


def test_tiny_dataset_guards(labels, tmp_path):
    """Three frames: one val frame at least, no test frame with test_fraction 0 (metrics None);
    fewer than 2 frames to train on is an error."""
    tiny = tmp_path / "tiny.db"
    write_labels_db(tiny, labels["frames"][:3])
    settings = replace(SETTINGS, max_epochs=2, test_fraction=0.0, val_fraction=0.01)
    metrics = train_member([str(tiny)], str(tmp_path / "m.pt"), seed=0, settings=settings, log_dir=str(tmp_path / "log"),
                           num_threads=1)
    assert (metrics.n_train, metrics.n_val, metrics.n_test) == (2, 1, 0)
    assert metrics.test_energy_mae is None and metrics.val_energy_mae is not None
    assert metrics.settings == settings.to_dict()
    with pytest.raises(ValueError, match="need ≥ 2"):
        split_indices(str(tiny), seed=0, training=replace(SETTINGS, val_fraction=0.1, test_fraction=0.999999))


def test_empty_test_set_is_an_error(labels, tmp_path):
    """A test_fraction that holds out fewer than training.min_test_frames frames stops training and
    evaluation with an error naming both keys (it was a silent n_test = 0, calibration on 0 frames)."""
    db = tmp_path / "few.db"
    write_labels_db(db, labels["frames"][:12])
    few = replace(SETTINGS, test_fraction=1e-9)  # no content hash falls below it
    with pytest.raises(ValueError, match=r"training\.test_fraction: 1e-09 of the 12 labelled frames held out 0 test "
                                         r"frame\(s\), fewer than training\.min_test_frames = 1"):
        train_member([str(db)], str(tmp_path / "m.pt"), seed=0, settings=few, log_dir=str(tmp_path / "log"), num_threads=1)
    def n_held_out(training) -> int:
        _, test, workdir = held_out_test_set([str(db)], training)
        shutil.rmtree(workdir)
        return len(test)

    with pytest.raises(ValueError, match="training.min_test_frames"):
        n_held_out(few)
    n_test = n_held_out(replace(SETTINGS, test_fraction=0.5))
    assert n_test > 0
    with pytest.raises(ValueError, match=f"held out {n_test} test frame"):
        n_held_out(replace(SETTINGS, test_fraction=0.5, min_test_frames=n_test + 1))
    assert n_held_out(replace(SETTINGS, test_fraction=0.0, min_test_frames=5)) == 0
