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
from scipy.spatial.transform import Rotation

from mlmm.embedding import frame_weights, weight_forces, weighted_charges
from mlmm.engines.xtb import POINT_CHARGE_SMOOTHING_ANG, XTBEmbeddingTerm, point_charge_potential
from mlmm.labeling.db import db_level, read_labelled_frames
from mlmm.model.baseline import DeltaStats
from mlmm.model.ensemble import Ensemble
from mlmm.model.stages import delta_labels
from mlmm.model.train import train_member
from mlmm.potentials import ensemble_potential_name, ensemble_term
from mlmm.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV
from test_training import SETTINGS, water_in_charges, write_labels_db

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


def test_xtb_pcgrad_is_the_coulomb_force_of_its_atomic_charges(frames):
    """xtb's point-charge gradient equals that of its atomic charges in the kernel
    1/sqrt(r² + ℓ²) (ℓ = 2/γ, γ = 99 Eh; shell hardness left out): the route by which
    XTBEmbeddingTerm gets ∂E/∂q_a = φ_a for the weights' forces. Agreement to the 1e-8 Eh/Bohr
    print precision of pcgrad (it would fail if xtb coupled the point charges to its atomic
    dipoles or quadrupoles too)."""
    term = XTBEmbeddingTerm()
    frame = frames[0]
    term.compute(frame)
    pcgrad = np.loadtxt(term.workdir / "pcgrad")  # Eh/Bohr
    q_qm = np.loadtxt(term.workdir / "charges")
    q_mm = weighted_charges(frame)[3:]
    d = (frame.positions[:3][None] - frame.positions[3:][:, None]) / BOHR_TO_ANGSTROM  # QM − site, Bohr
    r2 = (d**2).sum(-1) + (POINT_CHARGE_SMOOTHING_ANG / BOHR_TO_ANGSTROM) ** 2
    coulomb = q_mm[:, None] * ((q_qm[None, :] * r2**-1.5)[..., None] * d).sum(1)
    np.testing.assert_allclose(pcgrad, coulomb, rtol=0, atol=2e-8)
    assert np.abs(pcgrad).max() > 1e-3
    # the potential of the same charges and kernel (eV/e), as the term uses it
    phi = point_charge_potential(frame.positions[:3], q_qm, frame.positions[3:])
    assert phi == pytest.approx(HARTREE_TO_EV * (q_qm[None, :] / np.sqrt(r2)).sum(1), rel=1e-12)


def test_xtb_forces_include_the_embedding_weights():
    """A water in the switching shell of a 5 Å embedding (weight 0.33): the xtb energy is in the
    weighted charges and its forces match central differences on the QM atoms and the switched
    water. Reached at accuracy 0.01, h = 1e-3 Å: 4e-5 eV/Å on QM atoms, 2e-7 eV/Å on the switched
    water, where the weights' term is 0.015 eV/Å."""
    from mlmm.frames import make_frame

    from conftest import embedding_with

    # a generic orientation: Debian xtb 6.5.1's analytic gradient is wrong (by ~0.6 eV/Å, across the
    # bond) when a bond lies exactly along a Cartesian axis, as O–H1 of the plain water geometry does
    qm = Rotation.from_rotvec([0.3, -0.5, 0.2]).apply([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
    close = np.array([[2.9, 0.1, 0.2], [3.4, 0.8, 0.1], [3.3, -0.7, 0.3]])
    mm = np.vstack([close, close + np.array([2.1, 0.4, -0.3])])
    frame = make_frame(["O", "H", "H"], qm, ["O", "H", "H"] * 2, mm, [-0.834, 0.417, 0.417] * 2,
                       mm_molecule=[0, 0, 0, 1, 1, 1], embedding=embedding_with(cutoff=5.0, switch_width=2.0),
                       qm_charge=0, multiplicity=1, sampler="test", iteration=0, source="test", seed=0)
    assert 0.2 < frame_weights(frame)[6] < 0.8
    term = XTBEmbeddingTerm(accuracy=0.01)
    result = term.compute(frame)
    h = 1e-3
    coords = [(a, k) for a in (0, 1, 6, 7, 8) for k in range(3)]
    fd = []
    for atom, k in coords:
        energies = []
        for sign in (1, -1):
            shifted = frame.copy()
            shifted.positions[atom, k] += sign * h
            energies.append(term.compute(shifted)["energy"])
        fd.append(-(energies[0] - energies[1]) / (2 * h))
    np.testing.assert_allclose([result["forces"][a, k] for a, k in coords], fd, atol=1e-4)
    phi = np.zeros(len(frame))
    phi[3:] = point_charge_potential(frame.positions[:3], result["charges"], frame.positions[3:])
    assert np.abs(weight_forces(frame, phi)[6:]).max() > 5e-3  # the term the check needs


@pytest.fixture(scope="module")
def delta_setup(frames, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("delta")
    labels = root / "labels.db"
    write_labels_db(labels, frames)
    delta = root / "delta_xtb.db"
    delta_labels(str(labels), "xtb", str(delta), str(root / "delta_xtb.json"))
    stats = DeltaStats.from_json(root / "delta_xtb.json")
    settings = replace(SETTINGS, max_epochs=5, delta="xtb")
    model = root / "member.pt"
    train_member([str(delta)], str(model), seed=0, settings=settings, log_dir=str(root / "log"), num_threads=1)
    return {"labels": labels, "delta": delta, "stats": stats, "model": model}


def test_delta_labels_are_reference_minus_baseline(delta_setup):
    """Every Δ row + a fresh xtb evaluation gives back the PySCF reference; the DB is tagged."""
    assert db_level(str(delta_setup["delta"]))["delta"] == "xtb"
    term = XTBEmbeddingTerm()
    refs = read_labelled_frames(str(delta_setup["labels"]))
    deltas = read_labelled_frames(str(delta_setup["delta"]))
    assert len(refs) == len(deltas) == delta_setup["stats"].n_frames
    for ref, d in zip(refs, deltas):
        base = term.compute(d)
        assert d.get_potential_energy() + base["energy"] == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(d.get_forces() + base["forces"], ref.get_forces(), atol=1e-8)
    # HF/STO-3G and GFN2-xTB differ, but far less than their absolute energies
    assert delta_setup["stats"].energy_correction_std_ev < 1.0


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


def test_semiempirical_comparison_table(delta_setup):
    """The xTB/MM vs MLP/MM table on a test DB: xTB's force MAEs, mean energy offset and offset-free
    energy MAE equal those computed independently from the Δ labels (reference − xtb, write_delta_db);
    the Δ-trained MLP/MM's errors equal the correction's errors against the Δ labels
    (Ensemble.evaluate_db); a Δ DB is refused as reference."""
    from mlmm.model.comparison import compare_with_semiempirical

    table = compare_with_semiempirical([str(delta_setup["model"])], str(delta_setup["labels"]), SETTINGS, n_timing=2)
    xtb, mlp = table.methods
    stats = delta_setup["stats"]
    assert table.n_frames == stats.n_frames == 16 and "xTB" in xtb.method
    assert xtb.force_mae_qm == pytest.approx(stats.baseline_force_mae_qm, rel=1e-9)
    assert xtb.force_mae_mm == pytest.approx(stats.baseline_force_mae_mm, rel=1e-9)
    corrections = np.array([f.get_potential_energy() for f in read_labelled_frames(str(delta_setup["delta"]))])
    assert xtb.energy_mean_offset == pytest.approx(-corrections.mean(), abs=1e-9)
    assert xtb.energy_mae_offset_free == pytest.approx(np.abs(corrections - corrections.mean()).mean(), abs=1e-9)
    direct = Ensemble.load([delta_setup["model"]], "cpu").evaluate_db(str(delta_setup["delta"]))
    assert mlp.force_mae_qm == pytest.approx(direct["force_mae_qm"], rel=1e-5)
    assert mlp.force_mae_mm == pytest.approx(direct["force_mae_mm"], rel=1e-5)
    assert xtb.ms_per_call > 0 and mlp.ms_per_call > 0 and table.xtb_over_mlp_cost == pytest.approx(
        xtb.ms_per_call / mlp.ms_per_call)
    with pytest.raises(ValueError, match="Δ corrections"):
        compare_with_semiempirical([str(delta_setup["model"])], str(delta_setup["delta"]), SETTINGS)
