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
from mlmm.model.stages import evaluate_ensemble
from mlmm.model.train import prepare_db, split_indices, train_member
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
    "max_epochs": 30, "patience": 30, "val_fraction": 0.2,
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


def test_splits(labels, members, tmp_path):
    """Seeded train/val splits differ per member and cover every labelled frame once; with
    ``bootstrap`` the train rows are a same-size resample with repeats of the non-val rows."""
    db = prepare_db(labels["paths"], tmp_path)
    splits = [split_indices(db, seed=s, training=SETTINGS) for s in (0, 1)]
    assert splits[0][1] != splits[1][1]
    for train, val in splits:
        assert not (set(train) & set(val)) and sorted(train + val) == list(range(N_FRAMES))
    for m in members:
        assert m["metrics"].n_train + m["metrics"].n_val == N_FRAMES == m["metrics"].n_train_unique + m["metrics"].n_val
    boot = replace(SETTINGS, bootstrap=True)
    for seed in (0, 1):
        train, val = split_indices(db, seed=seed, training=boot)
        assert val == splits[seed][1]  # same validation frames as without bootstrap
        assert len(train) == N_FRAMES - len(val) and set(train) <= set(splits[seed][0])
        assert len(set(train)) < len(train)  # drawn with replacement: 32 draws of 32 rows repeat (p ≈ 1 - 1e-13)
    assert split_indices(db, seed=0, training=boot)[0] != split_indices(db, seed=1, training=boot)[0]


def test_evaluate_ensemble_on_a_fixed_test_set(labels, members, tmp_path):
    """ensemble.json errors equal MAEs computed here from each frame's PySCF labels and the members'
    own predictions (ensemble mean and each member alone), on frames no member trained on."""
    rng = np.random.default_rng(99)
    test_frames = [water_in_charges(rng) for _ in range(5)]
    test_db = tmp_path / "test_set.db"
    write_labels_db(test_db, test_frames)
    models = [m["model"] for m in members]
    evaluation = evaluate_ensemble(models, str(test_db), SETTINGS)
    ensemble = Ensemble.load(models, "cpu")
    qm_err, member_err = [], [[] for _ in models]
    for frame in test_frames:
        mask = frame.arrays["qm_mask"]
        _, ref = hf_qmmm_label(frame.positions[mask], frame.positions[~mask], frame.get_initial_charges()[~mask])
        result = ensemble.compute(frame)
        qm_err.append(np.abs(result["forces"][mask] - ref[mask]).ravel())
        for k in range(len(models)):
            member_err[k].append(np.abs(result["member_forces"][k][mask] - ref[mask]).ravel())
    assert evaluation.n_test == evaluation.n_frames == 5 and evaluation.test_set == str(test_db)
    assert np.isclose(evaluation.force_mae_qm, np.concatenate(qm_err).mean(), rtol=1e-4)
    assert np.allclose(evaluation.member_force_mae_qm, [np.concatenate(e).mean() for e in member_err], rtol=1e-4)
    assert evaluation.force_mae_qm < max(evaluation.member_force_mae_qm)  # averaging members helps on new frames


def test_training_reduces_errors(labels, members):
    """Trained members beat the untrained model (same E_ref fit) on val forces; the val loss drops."""
    workdir = labels["root"] / "merged_for_errors"
    workdir.mkdir(exist_ok=True)
    db = prepare_db(labels["paths"], workdir)
    try:
        for seed, m in enumerate(members):
            metrics = m["metrics"]
            train, val = split_indices(db, seed=seed, training=SETTINGS)
            data = db_dataset(db, SETTINGS.cutoff)
            torch.manual_seed(seed)
            untrained = build_model(SETTINGS, qm_charge_e=0, embedding=EMBEDDING)
            fit_energy_reference(untrained, [data[i] for i in train])
            before = Ensemble([untrained.eval()]).evaluate_db(db, val)
            assert metrics.val_force_mae_qm < 0.5 * before["force_mae_qm"]
            assert metrics.val_energy_mae < before["energy_mae"]
            assert metrics.val_losses[-1] < 0.5 * metrics.val_losses[0]
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
    """Three frames: one val frame at least; fewer than 2 labelled frames is an error."""
    tiny = tmp_path / "tiny.db"
    write_labels_db(tiny, labels["frames"][:3])
    settings = replace(SETTINGS, max_epochs=2, val_fraction=0.01)
    metrics = train_member([str(tiny)], str(tmp_path / "m.pt"), seed=0, settings=settings, log_dir=str(tmp_path / "log"),
                           num_threads=1)
    assert (metrics.n_train, metrics.n_val) == (2, 1) and metrics.val_energy_mae is not None
    assert metrics.settings == settings.to_dict()
    single = tmp_path / "single.db"
    write_labels_db(single, labels["frames"][:1])
    with pytest.raises(ValueError, match="need ≥ 2"):
        split_indices(str(single), seed=0, training=SETTINGS)
