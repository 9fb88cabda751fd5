"""Field-aware neural property model (issue 18 item 4): symmetry of ΔE and the transition dipole,
environment response, learning through sign flips of the labels, save/load."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mlmm.excited.neural_property import (
    NeuralPropertyArchitecture,
    NeuralPropertyModel,
    batch_inputs,
    build_property_net,
    fit_neural_property_model,
    EXCITATION_ENERGY,
    TRANSITION_DIPOLE,
)
from mlmm.frames import make_frame
from mlmm.labeling.excited import oscillator_strengths
from mlmm.settings import EmbeddingSettings

EMBEDDING = EmbeddingSettings(cutoff=8.0, switch_width=1.5)
ARCH = NeuralPropertyArchitecture(representation="schnet", n_atom_basis=16, n_interactions=2, n_rbf=12, cutoff=4.0,
                                  embedding=EMBEDDING)
WATER = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])


def frame(qm: np.ndarray, mm: np.ndarray):
    """QM water (O, H, H) with two TIP3P waters as MM sites."""
    return make_frame(["O", "H", "H"], qm, ["O", "H", "H"] * 2, mm, [-0.834, 0.417, 0.417] * 2,
                      mm_molecule=[0, 0, 0, 1, 1, 1], embedding=EMBEDDING, qm_charge=0, multiplicity=1,
                      sampler="test", iteration=0, source="test", seed=0)


def environment() -> np.ndarray:
    return np.vstack([WATER + [2.9, 0.4, 0.3], WATER + [-1.6, -2.4, 0.9]])


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(3)
    model = build_property_net(ARCH).double().eval()
    return model


def outputs(net, frames):
    with torch.no_grad():
        out = net(batch_inputs(frames, ARCH.cutoff))
    return out[EXCITATION_ENERGY].numpy(), out[TRANSITION_DIPOLE].numpy()


def test_dipole_turns_with_the_molecule_and_energy_does_not(net):
    """Rotating and translating the whole frame (QM and MM) leaves ΔE unchanged and rotates μ."""
    qm, mm = WATER + [0.03, -0.02, 0.05], environment()
    rot = Rotation.from_euler("xyz", [0.7, -1.1, 2.3]).as_matrix()
    shift = np.array([1.3, -0.4, 2.2])
    de, mu = outputs(net, [frame(qm, mm), frame(qm @ rot.T + shift, mm @ rot.T + shift)])
    assert np.linalg.norm(mu[0]) > 1e-3
    assert de[1] == pytest.approx(de[0], abs=1e-10)
    assert np.allclose(mu[1], rot @ mu[0], atol=1e-10)


def test_equivalent_atoms_can_swap_and_the_environment_matters(net):
    """Swapping the two H atoms changes neither ΔE nor μ; moving an MM water changes both."""
    qm, mm = WATER + [0.03, -0.02, 0.05], environment()
    swapped = qm[[0, 2, 1]]
    moved = mm.copy()
    moved[:3] += [-0.6, 0.3, 0.0]
    de, mu = outputs(net, [frame(qm, mm), frame(swapped, mm), frame(qm, moved)])
    assert de[1] == pytest.approx(de[0], abs=1e-10) and np.allclose(mu[1], mu[0], atol=1e-10)
    assert abs(de[2] - de[0]) > 1e-6 and np.linalg.norm(mu[2] - mu[0]) > 1e-6


def synthetic(n: int, seed: int):
    """Distorted waters in moving environments with a known ΔE (bond lengths, the MM potential at O)
    and μ (along the H–H vector), the dipole's sign flipped at random as phases of labels can be."""
    rng = np.random.default_rng(seed)
    frames, de, mu = [], [], []
    for _ in range(n):
        qm = WATER + rng.normal(0, 0.08, WATER.shape)
        mm = environment() + rng.normal(0, 0.3, (6, 3))
        fr = frame(qm, mm)
        r1, r2 = np.linalg.norm(qm[1] - qm[0]), np.linalg.norm(qm[2] - qm[0])
        de.append(6.0 + 4.0 * (r1 + r2 - 2 * 0.9572) + 0.5 * np.tanh(fr.positions[3, 0] - 2.9))
        mu.append(rng.choice([-1.0, 1.0]) * 0.8 * (qm[2] - qm[1]))
        frames.append(fr)
    return frames, np.array(de), np.array(mu)


def test_committee_learns_energy_and_dipole_through_sign_flips(tmp_path):
    """On held-out frames the trained committee beats the mean predictor for ΔE and recovers μ up to
    its sign (the labels' signs are random); f is (2/3) ΔE |μ|² of the members; save/load is exact."""
    frames, de, mu = synthetic(48, seed=0)
    osc = oscillator_strengths(de, mu)
    model, metrics = fit_neural_property_model(frames, de, mu, osc, ARCH, n_members=2, epochs=150, lr=3e-3,
                                               batch_size=8, patience=40, dipole_weight=1.0, val_fraction=0.2, seed=1)
    assert metrics.n_train + metrics.n_validation == 48 and metrics.n_validation == 10
    assert metrics.val_mae_excitation_energy_ev < 0.5 * metrics.val_mae_mean_predictor_excitation_energy_ev
    test, de_t, mu_t = synthetic(16, seed=5)
    de_p, f_p, s_de, s_f, mu_p = model.predict_with_sigma(test)
    assert np.abs(de_p - de_t).mean() < 0.5 * np.abs(de_t - de.mean()).mean()
    phase_free = np.minimum(np.linalg.norm(mu_p - mu_t, axis=1), np.linalg.norm(mu_p + mu_t, axis=1))
    assert phase_free.mean() < 0.5 * np.linalg.norm(mu_t, axis=1).mean()
    assert np.all(s_de > 0) and np.all(s_f >= 0)
    de_m, mu_m = model.member_outputs(test)
    signs = np.sign(np.einsum("mfk,fk->mf", mu_m, mu_m[0]))
    expected_f = np.mean([oscillator_strengths(de_m[k], mu_m[k] * signs[k][:, None]) for k in range(2)], axis=0)
    assert f_p == pytest.approx(expected_f, rel=1e-10)
    model.save(tmp_path / "pm.pt")
    again = NeuralPropertyModel.load(tmp_path / "pm.pt").predict_with_sigma(test)
    assert all(np.array_equal(a, b) for a, b in zip(again, (de_p, f_p, s_de, s_f, mu_p)))
    other = make_frame(["H", "O", "H"], WATER, ["O", "H", "H"], environment()[:3], [-0.834, 0.417, 0.417],
                       mm_molecule=[0, 0, 0], embedding=EMBEDDING, qm_charge=0, multiplicity=1, sampler="test",
                       iteration=0, source="test", seed=0)
    with pytest.raises(ValueError, match="trained for QM atoms"):
        model.predict_with_sigma([other])
