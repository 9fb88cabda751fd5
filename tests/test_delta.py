"""Δ-learning on the GFN2-xTB point-charge baseline (Debian ``xtb`` program, $embedding).

Pins the xtb build's units (point charges read in Å, pcgrad in Eh/Bohr) by finite differences, and
checks reference = baseline + correction on the Δ labels and in the trained ensemble's MD term.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from mlmm.engines.xtb import XTBEmbeddingTerm
from mlmm.labeling.db import db_level, frame_id, read_labelled_frames, write_label_db
from mlmm.model.baseline import write_delta_db
from mlmm.model.ensemble import Ensemble
from mlmm.model.train import train_member
from mlmm.potentials import ensemble_potential_name, ensemble_term
from test_training import SETTINGS, hf_qmmm_label, water_in_charges

pytestmark = pytest.mark.skipif(shutil.which("xtb") is None, reason="needs the xtb program (apt-get install xtb)")


@pytest.fixture(scope="module")
def frames() -> list:
    rng = np.random.default_rng(11)
    return [water_in_charges(rng) for _ in range(16)]


def test_xtb_embedding_units(frames):
    """Forces on QM atoms and MM charges are -dE/dR with positions in Å (so the point-charge file
    is read in Å and pcgrad converted from Eh/Bohr); no net force; the charges change E."""
    term = XTBEmbeddingTerm()
    frame = frames[0]
    result = term.compute(frame)
    h = 1e-3
    for atom, k in [(0, 0), (1, 2), (3, 1), (5, 0), (7, 2)]:
        energies = []
        for sign in (1, -1):
            shifted = frame.copy()
            shifted.positions[atom, k] += sign * h
            energies.append(term.compute(shifted)["energy"])
        assert -(energies[0] - energies[1]) / (2 * h) == pytest.approx(result["forces"][atom, k], abs=2e-4)
    assert np.abs(result["forces"][3:]).max() > 1e-2  # the MM charges feel the QM region
    np.testing.assert_allclose(result["forces"].sum(0), 0.0, atol=1e-4)
    neutral = frame.copy()
    neutral.set_initial_charges(np.zeros(len(frame)))
    vacuum = term.compute(neutral)
    assert abs(vacuum["energy"] - result["energy"]) > 1e-2
    assert np.abs(vacuum["forces"][3:]).max() == 0.0


def write_labels_db(path, frames: list) -> None:
    """HF/STO-3G labels (PySCF, point charges) in the labels-DB contract of mlmm.labeling.db."""
    rows = []
    for frame in frames:
        mask = frame.arrays["qm_mask"]
        q = frame.get_initial_charges()
        energy, forces = hf_qmmm_label(frame.positions[mask], frame.positions[~mask], q[~mask])
        props = {"energy": np.array([energy]), "forces": forces, "qm_mask": mask.astype(float), "mm_charges": q}
        meta = {**{k: frame.info[k] for k in ("qm_charge", "multiplicity", "sampler", "iteration", "source", "seed")},
                "level": "hf/sto-3g", "status": "ok", "pyscf_version": "test", "frame_id": frame_id(frame)}
        rows.append((frame, props, meta))
    write_label_db(path, rows, level={"method": "hf", "basis": "sto-3g"})


@pytest.fixture(scope="module")
def delta_setup(frames, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("delta")
    labels = root / "labels.db"
    write_labels_db(labels, frames)
    delta = root / "delta_xtb.db"
    stats = write_delta_db(str(labels), str(delta), "xtb")
    settings = replace(SETTINGS, max_epochs=5, delta="xtb", test_fraction=0.0)
    model = root / "member.pt"
    train_member([str(delta)], str(model), seed=0, settings=settings, log_dir=str(root / "log"), num_threads=1)
    return {"labels": labels, "delta": delta, "stats": stats, "model": model}


def test_delta_labels_are_reference_minus_baseline(delta_setup):
    """Every Δ row + a fresh xtb evaluation gives back the PySCF reference; the DB is tagged."""
    assert db_level(str(delta_setup["delta"]))["delta"] == "xtb"
    term = XTBEmbeddingTerm()
    refs = read_labelled_frames(str(delta_setup["labels"]))
    deltas = read_labelled_frames(str(delta_setup["delta"]))
    assert len(refs) == len(deltas) == delta_setup["stats"]["n_frames"]
    for ref, d in zip(refs, deltas):
        base = term.compute(d)
        assert d.get_potential_energy() + base["energy"] == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(d.get_forces() + base["forces"], ref.get_forces(), atol=1e-8)
    # HF/STO-3G and GFN2-xTB differ, but far less than their absolute energies
    assert delta_setup["stats"]["energy_correction_std_ev"] < 1.0


def test_delta_ensemble_adds_baseline(delta_setup):
    """MD term of a Δ ensemble (mlmm.potentials) = xtb baseline + learned correction, on training
    frames; σ unchanged; its error against the reference equals the correction's error against the
    Δ labels."""
    ensemble = Ensemble.load([delta_setup["model"]], "cpu")
    assert ensemble.delta == "xtb" and ensemble_potential_name(ensemble) == "delta"
    term = XTBEmbeddingTerm()
    total_term = ensemble_term(ensemble)
    for ref, d in list(zip(read_labelled_frames(str(delta_setup["labels"])),
                           read_labelled_frames(str(delta_setup["delta"]))))[:4]:
        total = total_term.compute(ref)
        correction = ensemble.compute(ref)
        base = term.compute(ref)
        assert total["energy"] == pytest.approx(base["energy"] + correction["energy"], abs=1e-6)
        np.testing.assert_allclose(total["forces"], base["forces"] + correction["forces"], atol=1e-6)
        assert total["sigma_force"] == correction["sigma_force"]
        assert total["energy"] - ref.get_potential_energy() == pytest.approx(
            correction["energy"] - d.get_potential_energy(), abs=1e-5)
        np.testing.assert_allclose(total["forces"] - ref.get_forces(), correction["forces"] - d.get_forces(), atol=1e-5)
    with pytest.raises(ValueError, match="different Δ baselines"):
        plain = torch.load(delta_setup["model"], weights_only=False)
        plain.mlmm_settings = {**plain.mlmm_settings, "delta": "none"}
        Ensemble([ensemble.models[0], plain])
