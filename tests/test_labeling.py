"""Labeling chunks: schnetpack DB contents, quarantine of a non-converging frame, resume, merge."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from ase.db import connect
from schnetpack.data import ASEAtomsData, AtomsLoader
from schnetpack.units import convert_units

from mlmm.engines.pyscf_qmmm import SCFNotConverged, qmmm_energy_forces
from mlmm.frames import make_frame, write_frames
from mlmm.labeling.chunks import chunk_slice, checkpoint_path, label_chunk
from mlmm.labeling.db import (
    PROPERTY_UNITS,
    LabelDBError,
    db_embedding,
    frame_id,
    merge_label_dbs,
    read_labelled_frames,
    write_label_db,
)
from conftest import embedding_with, level_with

PROPS = ["energy", "forces", "qm_mask", "mm_charges", "mm_molecule"]
LEVEL = level_with(method="hf", basis="sto-3g", conv_tol=1e-10, max_cycle=10)
WATER_QM = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2399872, 0.92662721, 0.0]])
MM_POS = np.array([[2.9, 0.1, 0.2], [3.4, 0.8, 0.1], [3.3, -0.7, 0.3], [-1.5, -2.6, 0.4], [-1.2, 2.9, -0.6]])
MM_Q = np.array([-0.834, 0.417, 0.417, 1.0, -1.0])
MM_GROUPS = [0, 0, 0, 1, 2]
EMBEDDING = embedding_with()
#: O–H bonds ×3 (2.9 Å): plain DIIS does not converge in 10 iterations; the stabilised retry does
HARD_STRETCH = 3.0


def water(index: int, stretch: float = 1.0):
    """Water (QM) + TIP3P water + Na+ + Cl- (MM), slightly rattled by ``index`` (Å, e)."""
    rng = np.random.default_rng(index)
    qm = WATER_QM * stretch + rng.normal(scale=0.02, size=(3, 3))
    mm = MM_POS + rng.normal(scale=0.05, size=MM_POS.shape)
    return make_frame(["O", "H", "H"], qm, ["O", "H", "H", "Na", "Cl"], mm, MM_Q, mm_molecule=MM_GROUPS,
                      embedding=EMBEDDING, qm_charge=0, multiplicity=1, sampler="test_md", iteration=index % 2, source=f"traj.xyz:{index}", seed=7)


def helium(index: int):
    """He (QM) in the same MM charges: one STO-3G function, so its SCF converges in 2 iterations."""
    rng = np.random.default_rng(index)
    return make_frame(["He"], rng.normal(scale=0.1, size=(1, 3)), ["O", "H", "H", "Na", "Cl"],
                      MM_POS + rng.normal(scale=0.05, size=MM_POS.shape), MM_Q, mm_molecule=MM_GROUPS,
                      embedding=EMBEDDING, qm_charge=0, multiplicity=1,
                      sampler="test_md", iteration=0, source=f"he.xyz:{index}", seed=7)


@pytest.fixture
def frames_file(tmp_path):
    """Five water frames; frame 2 is stretched and needs the stabilised retry at LEVEL."""
    frames = [water(i, HARD_STRETCH if i == 2 else 1.0) for i in range(5)]
    path = tmp_path / "frames.extxyz"
    write_frames(path, frames)
    return path


def test_chunk_slice():
    assert chunk_slice(10, 4, 0) == slice(0, 4)
    assert chunk_slice(10, 4, 2) == slice(8, 10)
    assert chunk_slice(10, 4, 5) == slice(10, 10)
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_slice(10, 0, 0)


def test_chunk_loads_through_schnetpack_with_all_properties(frames_file, tmp_path):
    db, rep = tmp_path / "chunk0.db", tmp_path / "chunk0.json"
    report = label_chunk(frames_file, 0, 4, LEVEL, db, rep, tmp_path / "chunk0.log")

    assert json.loads(rep.read_text()) == json.loads(json.dumps(report.to_dict()))
    assert [e["status"] for e in report.frames] == ["ok"] * 4
    assert (report.n_ok, report.n_failed, report.frame_range) == (4, 0, [0, 4])
    # the stretched frame failed plain DIIS and was rescued by the stabilised retry
    assert [(a["stabilised"], a["status"]) for a in report.frames[2]["attempts"]] == [
        (False, "scf_not_converged"), (True, "ok")]
    assert report.frames[2]["stabilised"] and not report.frames[0]["stabilised"]
    assert all(e["wall_s"] > 0 for e in report.frames)
    assert "4 ok, 0 failed" in (tmp_path / "chunk0.log").read_text()
    assert not checkpoint_path(db).exists()

    data = ASEAtomsData(str(db), load_properties=PROPS)
    assert len(data) == 4 and data.units == PROPERTY_UNITS
    for unit in PROPERTY_UNITS.values():  # every stored unit is one schnetpack can convert
        assert convert_units(unit, unit) == pytest.approx(1.0)
    batch = next(iter(AtomsLoader(data, batch_size=4, shuffle=False)))
    n_atoms = 4 * 8
    assert batch["energy"].shape == (4,)
    assert batch["forces"].shape == (n_atoms, 3)
    assert batch["qm_mask"].shape == (n_atoms,) and batch["mm_charges"].shape == (n_atoms,)
    assert torch.equal(batch["qm_mask"], torch.tensor([1.0, 1, 1, 0, 0, 0, 0, 0] * 4, dtype=torch.float64))
    assert batch["mm_charges"].sum().item() == pytest.approx(0.0, abs=1e-12)
    assert torch.equal(batch["mm_molecule"], torch.tensor([-1.0, -1, -1, 0, 0, 0, 1, 2] * 4, dtype=torch.float64))

    # the stored labels are the engine's energy (eV) and forces (eV/Å) on QM atoms and MM sites
    direct = qmmm_energy_forces(water(3), LEVEL)
    assert batch["energy"][3].item() == pytest.approx(direct.energy_ev, abs=1e-6)
    np.testing.assert_allclose(batch["forces"][24:].numpy(), direct.forces_ev_per_ang, atol=1e-4)

    with connect(str(db)) as conn:
        kvp = conn.get(4).key_value_pairs
    assert kvp["status"] == "ok" and kvp["level"] == "hf/sto-3g" and kvp["pyscf_version"]
    assert (kvp["frame_id"], kvp["source"], kvp["iteration"], kvp["seed"]) == (frame_id(water(3)), "traj.xyz:3", 1, 7)
    assert (kvp["embedding_cutoff"], kvp["embedding_switch_width"]) == (EMBEDDING.cutoff, EMBEDDING.switch_width)
    assert db_embedding(db) == EMBEDDING


def test_unconvergeable_frame_is_quarantined_and_the_others_labelled(tmp_path):
    # Two SCF iterations at most (default and stabilised each): He, with a single basis function,
    # is converged after one diagonalisation; water cannot reach 1e-12 Eh in 2 (+2 +2) iterations.
    level = level_with(method="hf", basis="sto-3g", conv_tol=1e-12, max_cycle=2)
    frames = [helium(0), water(0), helium(1)]
    for stabilised in (False, True):  # premise: the water frame genuinely cannot converge here
        with pytest.raises(SCFNotConverged):
            qmmm_energy_forces(frames[1], level, stabilised=stabilised)
    write_frames(tmp_path / "mixed.extxyz", frames)
    db = tmp_path / "chunk0.db"
    report = label_chunk(tmp_path / "mixed.extxyz", 0, 3, level, db, tmp_path / "chunk0.json",
                         tmp_path / "chunk0.log")
    assert [e["status"] for e in report.frames] == ["ok", "scf_not_converged", "ok"]
    assert [a["stabilised"] for a in report.frames[1]["attempts"]] == [False, True]
    assert (report.n_ok, report.n_failed) == (2, 1)
    assert "quarantined: scf_not_converged" in (tmp_path / "chunk0.log").read_text()
    assert [f.info["source"] for f in read_labelled_frames(db)] == ["he.xyz:0", "he.xyz:1"]


def test_read_labelled_frames_restores_frames_and_labels(frames_file, tmp_path):
    db = tmp_path / "c.db"
    label_chunk(frames_file, 1, 2, LEVEL, db, tmp_path / "c.json")  # frames 2, 3
    frame = read_labelled_frames(db)[1]
    original = water(3)
    np.testing.assert_array_equal(frame.arrays["qm_mask"], original.arrays["qm_mask"])
    np.testing.assert_allclose(frame.get_initial_charges(), original.get_initial_charges())
    np.testing.assert_array_equal(frame.arrays["mm_molecule"], original.arrays["mm_molecule"])
    np.testing.assert_allclose(frame.positions, original.positions, atol=1e-7)
    assert frame.info["sampler"] == "test_md" and frame.info["multiplicity"] == 1
    assert frame.info["embedding_cutoff"] == EMBEDDING.cutoff
    assert frame_id(frame) == frame_id(original)
    direct = qmmm_energy_forces(original, LEVEL)
    assert frame.get_potential_energy() == pytest.approx(direct.energy_ev, abs=1e-6)
    assert frame.get_forces().shape == (8, 3)


def test_empty_chunk_writes_valid_empty_db_and_report(frames_file, tmp_path):
    db = tmp_path / "chunk9.db"
    report = label_chunk(frames_file, 9, 4, LEVEL, db, tmp_path / "chunk9.json")
    assert report.n_frames == 0 and report.frames == []
    assert len(ASEAtomsData(str(db), load_properties=PROPS)) == 0


def test_resume_labels_only_the_missing_frames(tmp_path):
    frames_path = tmp_path / "good.extxyz"
    write_frames(frames_path, [water(i) for i in (0, 1, 3, 4)])
    db = tmp_path / "chunk0.db"
    first = label_chunk(frames_path, 0, 4, LEVEL, db, tmp_path / "first.json")
    energies = [e["energy_ev"] for e in first.frames]

    # an earlier run of the same chunk was killed after labelling frames 1 and 3
    ckpt = checkpoint_path(db)
    shutil.copy(db, ckpt)
    with connect(str(ckpt)) as conn:
        conn.delete([1, 3])
    second = label_chunk(frames_path, 0, 4, LEVEL, db, tmp_path / "second.json")
    assert [e["resumed"] for e in second.frames] == [False, True, False, True]
    assert [len(e.get("attempts", [])) for e in second.frames] == [1, 0, 1, 0]
    assert second.n_resumed == 2 and second.n_ok == 4
    assert not ckpt.exists()
    labelled = read_labelled_frames(db)
    assert [f.info["source"] for f in labelled] == [f"traj.xyz:{i}" for i in (0, 1, 3, 4)]
    np.testing.assert_allclose([f.get_potential_energy() for f in labelled], energies, atol=1e-6)

    # a checkpoint from other level-of-theory settings is stale and discarded
    shutil.copy(db, ckpt)
    third = label_chunk(frames_path, 0, 4, replace(LEVEL, conv_tol=1e-11), db, tmp_path / "third.json")
    assert third.n_resumed == 0 and third.n_ok == 4


def test_merge_keeps_rows_and_metadata(frames_file, tmp_path):
    paths = []
    for chunk in range(3):  # 5 frames in chunks of 2: [0, 1], [2, 3], [4]
        paths.append(tmp_path / f"chunk{chunk}.db")
        label_chunk(frames_file, chunk, 2, LEVEL, paths[-1], tmp_path / f"chunk{chunk}.json")
    empty = tmp_path / "chunk7.db"
    label_chunk(frames_file, 7, 2, LEVEL, empty, tmp_path / "chunk7.json")

    out = tmp_path / "labels.db"
    assert merge_label_dbs([*paths, empty], out) == 5
    merged = read_labelled_frames(out)
    assert [f.info["source"] for f in merged] == [f"traj.xyz:{i}" for i in range(5)]
    originals = [f for p in paths for f in read_labelled_frames(p)]
    for a, b in zip(merged, originals):
        assert a.info == b.info
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
    data = ASEAtomsData(str(out), load_properties=PROPS)
    assert len(data) == 5 and data.metadata["mlmm_level"] == LEVEL.to_dict()

    all_empty = tmp_path / "none.db"
    assert merge_label_dbs([empty, empty], all_empty) == 0
    assert len(ASEAtomsData(str(all_empty), load_properties=PROPS)) == 0

    other = tmp_path / "other.db"
    write_label_db(other, [], {**LEVEL.to_dict(), "basis": "6-31g"})
    with pytest.raises(LabelDBError, match="different levels"):
        merge_label_dbs([paths[0], other], tmp_path / "mixed.db")


def test_labels_are_bit_identical_across_workers_and_resume(tmp_path):
    # labels must not depend on how many worker processes ran, nor on a resume from a checkpoint:
    # a rerun of a killed workflow must reproduce an uninterrupted one bit for bit
    frames_path = tmp_path / "good.extxyz"
    write_frames(frames_path, [water(i) for i in (0, 1, 3, 4)])
    serial, parallel = tmp_path / "serial.db", tmp_path / "parallel.db"
    label_chunk(frames_path, 0, 4, LEVEL, serial, tmp_path / "serial.json", workers=1)
    ckpt = checkpoint_path(parallel)  # a killed 2-worker run had finished the first and last frame
    shutil.copy(serial, ckpt)
    with connect(str(ckpt)) as conn:
        conn.delete([2, 3])
    report = label_chunk(frames_path, 0, 4, LEVEL, parallel, tmp_path / "parallel.json", workers=2)
    assert [e["resumed"] for e in report.frames] == [True, False, False, True]
    assert [e["index"] for e in report.frames] == [0, 1, 2, 3]
    a, b = read_labelled_frames(serial), read_labelled_frames(parallel)
    assert [f.info["source"] for f in b] == [f"traj.xyz:{i}" for i in (0, 1, 3, 4)]
    for fa, fb in zip(a, b):
        assert fa.get_potential_energy() == fb.get_potential_energy()
        assert np.array_equal(fa.get_forces(), fb.get_forces())
        assert np.array_equal(fa.positions, fb.positions)


def test_labels_cut_with_different_embeddings_cannot_train_one_model(tmp_path):
    """The embedding is part of a frame's identity and of its labels: frames that differ only in it
    get different ids, and DBs mixing embeddings are refused naming both."""
    from mlmm.labeling.ground_state import label_metadata, label_properties

    wide = water(0)
    narrow = wide.copy()
    narrow.info["embedding_switch_width"] = 1.0
    assert frame_id(narrow) != frame_id(wide)
    rows = []
    for f in (wide, narrow):
        result = qmmm_energy_forces(f, LEVEL)
        rows.append((f, label_properties(f, result), label_metadata(f, LEVEL)))
    write_label_db(tmp_path / "a.db", rows[:1], LEVEL.to_dict())
    write_label_db(tmp_path / "b.db", rows[1:], LEVEL.to_dict())
    assert db_embedding([tmp_path / "a.db"]) == EMBEDDING
    with pytest.raises(LabelDBError, match=r"different embeddings.*\(10\.0, 2\.0\).*a\.db.*\(10\.0, 1\.0\).*b\.db"):
        db_embedding([tmp_path / "a.db", tmp_path / "b.db"])
