"""Excited-state stages on a tiny real system: labels -> property model -> predictions -> spectra.

Formaldehyde + one TIP3P water, HF/STO-3G TDA (~0.1 s per frame). The "trajectory" here is a set
of randomly displaced frames (no MLP dynamics: that needs a trained bright-state ensemble and is
covered by the workflow run), so the stages are checked with real TDA numbers end to end.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from mlmm.excited import stages
from mlmm.excited.property_model import (
    PropertyModel,
    PropertyModelMetrics,
    descriptor,
    feature_groups,
    fit_property_model,
    torsion_list,
)
from mlmm.frames import make_frame, read_frames, write_frames
from mlmm.jobs import read_json
from mlmm.labeling.db import read_labelled_frames
from mlmm.labeling.excited import label_excited_frames, state_reference
from mlmm.settings import PropertyModelSettings, SpectraSettings
from mlmm.spectra.ensemble import read_spectrum_csv
from conftest import embedding_with, settings_with

QM_SYMBOLS = ["C", "O", "H", "H"]
QM_POS = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.21], [0.94, 0.0, -0.59], [-0.94, 0.0, -0.59]])
MM_SYMBOLS = ["O", "H", "H"]
MM_POS = np.array([[0.3, 0.2, 3.1], [0.9, 0.5, 3.7], [-0.5, 0.1, 3.6]])
MM_Q = np.array([-0.834, 0.417, 0.417])
#: the excited.level and excited.td settings (schema defaults for the rest)
EXCITED = settings_with(excited={"level": {"method": "hf", "basis": "sto-3g", "conv_tol": 1e-9},
                                 "td": {"n_states": 4, "window": 4, "tracking": "reference"}}).excited
LEVEL, TD = EXCITED.level, EXCITED.td
KRR = replace(EXCITED.property_model, kind="krr", cv_folds=5, seed=0)
EMBEDDING = embedding_with()


def displaced_frames(n, seed, qm_amp=0.04, mm_amp=0.4, sampler="test"):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        frames.append(make_frame(QM_SYMBOLS, QM_POS + rng.normal(0, qm_amp, QM_POS.shape), MM_SYMBOLS,
                                 MM_POS + rng.normal(0, mm_amp, (1, 3)), MM_Q, mm_molecule=[0, 0, 0],
                                 embedding=EMBEDDING, qm_charge=0, multiplicity=1,
                                 sampler=sampler, iteration=0, source=f"test:{seed}:{i}", seed=seed))
    return frames


def test_descriptor_is_invariant_to_rotation_and_sees_the_environment():
    fr = displaced_frames(1, 0)[0]
    torsions = torsion_list(fr)
    assert torsions.shape == (0, 4)  # formaldehyde: no bond has neighbours on both ends
    rotated = fr.copy()
    rotated.rotate(37, "x", center=(0, 0, 0))
    rotated.rotate(-71, "z", center=(0, 0, 0))
    np.testing.assert_allclose(descriptor(rotated, torsions), descriptor(fr, torsions), atol=1e-10)
    moved = fr.copy()
    moved.positions[4:] += 1.0
    assert np.abs(descriptor(moved, torsions) - descriptor(fr, torsions))[6:].max() > 1e-2  # the MM potential part
    np.testing.assert_allclose(descriptor(moved, torsions)[:6], descriptor(fr, torsions)[:6])
    # groups: C–O heavy pair, 4 heavy–H pairs, 1 H–H pair, 4 MM potentials
    np.testing.assert_array_equal(feature_groups(QM_SYMBOLS, 0), [0, 1, 1, 1, 1, 2, 3, 3, 3, 3])


def butadiene_frame(twist_deg: float = 0.0) -> Atoms:
    """s-trans-butadiene (ASE's g2 geometry) with one terminal CH2 twisted by ``twist_deg`` about its
    C=C bond, no MM sites."""
    mol = molecule("butadiene")
    carbons = [i for i, s in enumerate(mol.get_chemical_symbols()) if s == "C"]
    # the terminal carbon farthest from the centre and the carbon bonded to it
    d = mol.get_all_distances()
    end = max(carbons, key=lambda i: np.linalg.norm(mol.positions[i] - mol.positions[carbons].mean(0)))
    inner = min((c for c in carbons if c != end), key=lambda c: d[end, c])
    hs = [i for i, s in enumerate(mol.get_chemical_symbols()) if s == "H" and d[end, i] < 1.2]
    axis = mol.positions[end] - mol.positions[inner]
    part = Atoms([mol[i] for i in hs], positions=mol.positions[hs])
    part.rotate(twist_deg, axis, center=mol.positions[end])
    mol.positions[hs] = part.positions
    return make_frame(mol.get_chemical_symbols(), mol.positions, [], np.zeros((0, 3)), [], mm_molecule=[],
                      embedding=EMBEDDING, qm_charge=0,
                      multiplicity=1, sampler="test", iteration=0, source=f"butadiene:{twist_deg}", seed=0)


def test_torsion_features_are_the_cosines_of_the_bonded_dihedrals():
    flat = butadiene_frame()
    torsions = torsion_list(flat)
    assert len(torsions) == 12  # 4 about each C=C, 4 about the central C–C
    twisted = butadiene_frame(90.0)
    for fr in (flat, twisted):
        cos = descriptor(fr, torsions)[-12:]
        expected = [np.cos(np.radians(fr.get_dihedral(*t))) for t in torsions]
        np.testing.assert_allclose(cos, expected, atol=1e-10)
    mirrored = twisted.copy()
    mirrored.positions[:, 2] *= -1  # a reflection leaves every cos φ unchanged
    np.testing.assert_allclose(descriptor(mirrored, torsions), descriptor(twisted, torsions), atol=1e-10)
    # the terminal twist moves the torsions about that C=C by ~1 (cos 0 or 180° -> cos 90°)
    change = np.abs(descriptor(twisted, torsions) - descriptor(flat, torsions))[-12:]
    assert (change > 0.9).sum() == 4 and np.sort(change)[-5] < 0.05


def test_property_model_learns_a_twist_dependent_gap_through_distance_noise():
    """A target that depends on the terminal twist alone, every distance noisy: the fit must learn
    it (a synthetic regression target, to test the model selection, not a QM result)."""
    rng = np.random.default_rng(3)
    frames, target = [], []
    for _ in range(60):
        twist = rng.uniform(0, 90)
        fr = butadiene_frame(twist)
        fr.positions[:10] += rng.normal(0, 0.03, (10, 3))  # noise in every distance
        frames.append(fr)
        target.append(6.0 - 3.0 * np.sin(np.radians(twist)) ** 2)
    target = np.array(target)
    model, metrics = fit_property_model(frames[:45], target[:45], np.full(45, 0.5), seed=0)
    assert set(metrics.group_weights) == {"heavy_heavy", "heavy_h", "h_h", "mm_potential", "torsions"}
    pred, _ = model.predict(frames[45:])
    assert np.abs(pred - target[45:]).mean() < 0.25 * np.abs(target[45:] - target[:45].mean()).mean()


def test_property_model_beats_the_mean_and_round_trips(tmp_path):
    level, settings = LEVEL, TD
    train = displaced_frames(40, 1)
    test = displaced_frames(12, 2)
    reference = state_reference(train[0], level, settings, source="test")
    _, rec_train = label_excited_frames(train, level, settings, reference=reference, forces=False)
    _, rec_test = label_excited_frames(test, level, settings, reference=reference, forces=False)
    de = [r.bright_excitation_energy_ev for r in rec_train]
    f = [r.bright_oscillator_strength for r in rec_train]
    model, metrics = fit_property_model(train, de, f, seed=0)
    pred_de, pred_f = model.predict(test)
    ref_de = np.array([r.bright_excitation_energy_ev for r in rec_test])
    ref_f = np.array([r.bright_oscillator_strength for r in rec_test])
    assert np.abs(pred_de - ref_de).mean() < 0.5 * np.abs(ref_de - np.mean(de)).mean()
    assert np.abs(pred_f - ref_f).mean() < np.abs(ref_f - np.mean(f)).mean()
    assert model.coverage(test).min() > 0.5  # test frames are drawn like the training frames
    far = displaced_frames(3, 5, qm_amp=0.4)
    assert model.coverage(far).max() < model.coverage(test).min()
    # committee σ: the same predictions, an error scale like the actual one, larger away from the data
    de2, f2, sig_de, sig_f = model.predict_with_sigma(test)
    np.testing.assert_allclose(de2, pred_de)
    mae = np.abs(pred_de - ref_de).mean()
    print(f"test MAE {mae:.3f} eV, mean σ {sig_de.mean():.3f} eV; CV MAE {metrics.cv_mae_excitation_energy_ev:.3f}, "
          f"σ scale {metrics.sigma_scale_excitation_energy:.2f}, far σ {model.predict_with_sigma(far)[2].mean():.3f}")
    assert 0.2 * mae < sig_de.mean() < 5 * mae and sig_f.mean() > 0
    assert model.predict_with_sigma(far)[2].mean() > 2 * sig_de.mean()
    assert metrics.cv_mean_committee_spread_excitation_energy_ev > 0 and metrics.n_committee > 1
    assert metrics.cv_mae_excitation_energy_ev < metrics.cv_mae_mean_predictor_excitation_energy_ev
    metrics.to_json(tmp_path / "metrics.json")
    assert PropertyModelMetrics.from_json(tmp_path / "metrics.json") == metrics
    model.save(tmp_path / "m.npz")
    again = PropertyModel.load(tmp_path / "m.npz")
    np.testing.assert_allclose(again.predict(test)[0], pred_de)
    np.testing.assert_allclose(again.predict_with_sigma(test)[2], sig_de)
    water = make_frame(["O", "H", "H"], MM_POS, [], np.zeros((0, 3)), [], mm_molecule=[], embedding=EMBEDDING,
                       qm_charge=0, multiplicity=1,
                       sampler="t", iteration=0, source="t", seed=0)
    with pytest.raises(ValueError, match="trained for QM atoms"):
        model.predict([water])


def check_property_sigma_selection(tmp_path, near_path, far_frames, model_path):
    """Bright AL selection by property σ: among walker frames whose force σ all count as accurate,
    the ones the property model is unsure of — far from its training data (QM displacements of
    0.3 vs 0.04 Å) — are selected, and the loop does not converge; with a threshold above every σ
    nothing is selected and the criterion is met."""
    from mlmm.al.stages import WalkerStats, select

    near = read_frames(near_path)
    walker = tmp_path / "walker0.extxyz"
    write_frames(walker, near + far_frames)
    n = len(near) + len(far_frames)
    stats = tmp_path / "walker0.json"
    WalkerStats(skipped=False, sigmas=[0.01] * n).to_json(stats)
    sigma = stages.property_predictions(near + far_frames, model_path, "krr")[2]
    threshold = float(sigma[:len(near)].max())
    assert sigma[len(near):].max() > threshold  # the property model is less sure away from its data
    al = replace(settings_with().al, sigma_lo=0.1, sigma_hi=2.0, max_selected=4, calibrated_thresholds=False)
    args = dict(frames=[str(walker)], stats=[str(stats)], previous_selection=[], evaluations=[], calibration=[],
                iteration=1, al=al, property_model=model_path, property_kind="krr")
    record = select(**args, selected_out=str(tmp_path / "sel.extxyz"), property_sigma_ev=threshold)
    far_ids = {frame_id_of(f) for f in far_frames}
    chosen = read_frames(tmp_path / "sel.extxyz")
    assert record.accurate == n and record.property_candidate == int((sigma > threshold).sum()) >= 1
    assert 1 <= record.n_selected <= 4 and all(frame_id_of(f) in far_ids for f in chosen)
    assert not record.converged and record.criteria["property_sigma"]["met"] is False
    quiet = select(**args, selected_out=str(tmp_path / "none.extxyz"), property_sigma_ev=10 * float(sigma.max()))
    assert quiet.n_selected == 0 and quiet.property_candidate == 0 and quiet.criteria["property_sigma"]["met"]
    force_only = select(**{**args, "property_model": None}, selected_out=str(tmp_path / "f.extxyz"))
    assert force_only.n_selected == 0 and force_only.property_candidate is None


def frame_id_of(frame: Atoms) -> tuple:
    return tuple(np.round(frame.positions, 6).ravel())


def test_stages_from_labels_to_spectra_and_reference_check(tmp_path):
    ground = tmp_path / "ground.extxyz"
    biased = displaced_frames(10, 5, qm_amp=0.3, sampler="metadynamics")  # far from the others: never labelled
    thermal = displaced_frames(40, 3, sampler="wigner")
    write_frames(ground, [f for pair in zip(thermal[:10], biased) for f in pair] + thermal[10:])
    write_frames(tmp_path / "initial.extxyz", displaced_frames(1, 0, qm_amp=0.0, mm_amp=0.0))
    state_ref = str(tmp_path / "state_reference.json")
    stages.excited_state_reference(str(tmp_path / "initial.extxyz"), LEVEL, TD).to_json(state_ref)
    assert read_json(state_ref)["state_index"] == 2
    traj = tmp_path / "traj.extxyz"
    write_frames(traj, displaced_frames(16, 4))
    stages.label_excited(str(ground), 36, LEVEL, TD, db_out=str(tmp_path / "bright.db"),
                         samplers=["xtb_md", "wigner"], state_reference=state_ref).to_json(tmp_path / "records.json")
    records = read_json(tmp_path / "records.json")
    assert records["n_frames"] == 36 and records["n_ok"] == 36
    assert {r["sampler"] for r in records["records"]} == {"wigner"}
    assert all(read_frames(ground)[r["source_index"]].info["sampler"] == "wigner" for r in records["records"])
    assert records["bright_state_counts"] == {"2": 36}  # S3 (pi-pi*) throughout; ambiguous frames included
    assert len(read_labelled_frames(tmp_path / "bright.db")) == records["n_training_rows"] == 36 - records["n_ambiguous"]
    stages.train_property_model([str(tmp_path / "bright.db")], [str(tmp_path / "records.json")],
                                KRR, str(tmp_path / "pm.npz"), str(tmp_path / "pm.json"))
    stages.predict_properties(str(traj), str(tmp_path / "pm.npz"), "krr").to_json(tmp_path / "pred.json")
    with pytest.raises(ValueError, match=r"excited.property_model.kind: 'gp', expected one of \['krr', 'neural'\]"):
        stages.predict_properties(str(traj), str(tmp_path / "pm.npz"), "gp")
    check_property_sigma_selection(tmp_path, traj, biased, str(tmp_path / "pm.npz"))
    stages.label_excited(str(traj), 8, LEVEL, TD, state_reference=state_ref).to_json(tmp_path / "ref.json")
    assert {r["bright_state"] for r in read_json(tmp_path / "ref.json")["records"]} == {2}
    assert "n_training_rows" not in read_json(tmp_path / "ref.json")
    out = {k: str(tmp_path / f"{k}") for k in ("a.csv", "e.csv", "a.png", "e.png", "s.json")}
    cfg = SpectraSettings(e_min=5.0, e_max=16.0, n_points=1101, fwhm=0.5, shape="gaussian")
    stages.excited_spectra(str(tmp_path / "records.json"), str(tmp_path / "pred.json"), str(tmp_path / "ref.json"), cfg,
                           out["a.csv"], out["e.csv"], out["a.png"], out["e.png"], out["s.json"],
                           property_kind="krr", property_metrics=str(tmp_path / "pm.json"))
    summary = stages.SpectraSummary.from_json(out["s.json"])
    assert summary.to_dict() == read_json(out["s.json"])
    # absorption refuses biased frames: one record claimed by the metadynamics sampler
    tampered = read_json(tmp_path / "records.json")
    tampered["records"][3]["sampler"] = "metadynamics"
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    with pytest.raises(ValueError, match=r"tampered\.json: the absorption spectrum takes unbiased frames only.*1 metadynamics"):
        stages.excited_spectra(str(tmp_path / "tampered.json"), str(tmp_path / "pred.json"), str(tmp_path / "ref.json"),
                               cfg, out["a.csv"], out["e.csv"], out["a.png"], out["e.png"], str(tmp_path / "t.json"), "krr")
    with pytest.raises(ValueError, match=r"no frame of the samplers \['xtb_md'\]"):
        stages.label_excited(str(traj), 8, LEVEL, TD, samplers=["xtb_md"], state_reference=state_ref)
    ref = summary.reference
    assert ref["n_frames"] == 8
    # the ML spectrum on the reference frames must resemble the TDDFT one (same molecule, small model error)
    # measured: shift +0.007 eV, mean shift +0.006 eV, overlap 0.97, MAE(ΔE) 0.025 eV (uniformly weighted
    # descriptor, single validation split: +0.18 eV, 0.82, 0.16 eV)
    assert abs(ref["peak_shift_ev"]) < 0.1 and abs(ref["mean_shift_ev"]) < 0.1 and ref["overlap"] > 0.85
    assert ref["mae_excitation_energy_ev"] < 0.1
    assert 0 < ref["mean_sigma_excitation_energy_ev"] < 1.0 and 0 <= ref["fraction_within_2sigma"] <= 1
    assert all(r["sigma_excitation_energy_ev"] >= 0 for r in read_json(tmp_path / "pred.json")["records"])
    assert summary.emission_ml["fraction_outside_grid"] < 1e-3  # all lines lie well inside 5–16 eV
    assert summary.stokes["stokes_shift_ev"] == pytest.approx(
        summary.absorption["peak_ev"] - summary.emission_ml["peak_ev"])
    assert summary.property_model == PropertyModelMetrics.from_json(tmp_path / "pm.json")
    assert summary.property_model.n_frames == records["n_training_rows"]
    assert summary.labels.n_ok == 36 and summary.dynamics is None and summary.active_learning is None
    cols = read_spectrum_csv(out["e.csv"])
    assert {"emission_ml_per_ev", "emission_tddft_reference_frames_per_nm"} <= set(cols)
    assert (tmp_path / "a.png").stat().st_size > 1000
    assert len(read_frames(traj)) == 16


def test_neural_property_model_through_the_stages(tmp_path):
    """kind neural on real TDA labels: train_property_model learns ΔE and the transition dipole (in
    the state reference's phase), predict_properties writes μ (no kernel coverage) and f = 2/3 ΔE |μ|²
    on the trajectory frames, and the spectra summary carries its metrics as property_model_neural."""
    from mlmm.excited.neural_property import NeuralPropertyMetrics
    from mlmm.labeling.excited import oscillator_strengths

    ground = tmp_path / "ground.extxyz"
    write_frames(ground, displaced_frames(30, 3, sampler="wigner"))
    write_frames(tmp_path / "initial.extxyz", displaced_frames(1, 0, qm_amp=0.0, mm_amp=0.0))
    state_ref = str(tmp_path / "state_reference.json")
    stages.excited_state_reference(str(tmp_path / "initial.extxyz"), LEVEL, TD).to_json(state_ref)
    stages.label_excited(str(ground), 30, LEVEL, TD, db_out=str(tmp_path / "bright.db"), samplers=["wigner"],
                         state_reference=state_ref).to_json(tmp_path / "records.json")
    neural = replace(EXCITED.property_model, kind="neural", seed=0,
                     neural=replace(EXCITED.property_model.neural, representation="schnet", n_atom_basis=16,
                                    n_interactions=2, n_rbf=12, n_members=2, max_epochs=60, patience=30))
    stages.train_property_model([str(tmp_path / "bright.db")], [str(tmp_path / "records.json")], neural,
                                str(tmp_path / "pm.pt"), str(tmp_path / "pm.json"))
    metrics = NeuralPropertyMetrics.from_json(tmp_path / "pm.json")
    assert metrics.n_members == 2 and metrics.n_train + metrics.n_validation == read_json(tmp_path / "records.json")["n_training_rows"]
    assert metrics.val_mae_excitation_energy_ev < metrics.val_mae_mean_predictor_excitation_energy_ev
    traj = tmp_path / "traj.extxyz"
    write_frames(traj, displaced_frames(8, 4))
    pred = stages.predict_properties(str(traj), str(tmp_path / "pm.pt"), "neural")
    assert pred.n_extrapolated == 0 and all(r.coverage is None for r in pred.records)
    de = np.array([r.bright_excitation_energy_ev for r in pred.records])
    mu = np.array([r.transition_dipole_e_ang for r in pred.records])
    f = np.array([r.bright_oscillator_strength for r in pred.records])
    assert f == pytest.approx(oscillator_strengths(de, mu), rel=0.05)  # committee mean of f vs f of the means
    pred.to_json(tmp_path / "pred.json")
    stages.label_excited(str(traj), 8, LEVEL, TD, state_reference=state_ref).to_json(tmp_path / "ref.json")
    out = {k: str(tmp_path / k) for k in ("a.csv", "e.csv", "a.png", "e.png", "s.json")}
    cfg = SpectraSettings(e_min=5.0, e_max=16.0, n_points=1101, fwhm=0.5, shape="gaussian")
    stages.excited_spectra(str(tmp_path / "records.json"), str(tmp_path / "pred.json"), str(tmp_path / "ref.json"), cfg,
                           out["a.csv"], out["e.csv"], out["a.png"], out["e.png"], out["s.json"],
                           property_kind="neural", property_metrics=str(tmp_path / "pm.json"))
    summary = stages.SpectraSummary.from_json(out["s.json"])
    assert summary.property_model is None and summary.property_model_neural == metrics
    assert summary.reference["mae_excitation_energy_ev"] < 1.0
