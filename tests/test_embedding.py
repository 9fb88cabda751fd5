"""The embedding definition (mlmm.embedding): per-group weights, their smoothness and derivatives, and
that labels (PySCF), model and MD see the same weighted charges; on the demo frame the per-group
switch keeps the potential at the QM atoms where the per-pair switch does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mlmm.embedding import (boundary_crossings, frame_weights, molecule_weights, site_weights, weight_forces,
                            weighted_charges)
from mlmm.frames import FrameError, make_frame
from mlmm.units import BOHR_TO_ANGSTROM, COULOMB_EV_ANGSTROM, HARTREE_TO_EV
from conftest import embedding_with, level_with, load_demo, settings_with

ROOT = Path(__file__).resolve().parents[1]
WATER = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
TIP3P = [-0.834, 0.417, 0.417]
EMBEDDING = embedding_with(cutoff=6.0, switch_width=2.0)


def quintic_switch(r: np.ndarray, cutoff: float, width: float) -> np.ndarray:
    """Reference switch written out: 1 − 10x³ + 15x⁴ − 6x⁵, x = (r − cutoff + width)/width in [0, 1]."""
    x = np.clip((np.asarray(r) - cutoff + width) / width, 0.0, 1.0)
    return 1.0 - 10.0 * x**3 + 15.0 * x**4 - 6.0 * x**5


def ion_frame(r_ang: float):
    """He (QM) and one Na+ at distance r: a group with a single (QM, MM) pair."""
    return make_frame(["He"], np.zeros((1, 3)), ["Na"], np.array([[r_ang, 0.0, 0.0]]), [1.0], mm_molecule=[0],
                      embedding=EMBEDDING, qm_charge=0, multiplicity=1, sampler="t", iteration=0, source="t", seed=0)


def water_frame(mm_waters: list[np.ndarray], qm=WATER, embedding=EMBEDDING):
    """QM water + rigid TIP3P waters (one group each) at the given positions (Å)."""
    mm = np.vstack(mm_waters) if mm_waters else np.zeros((0, 3))
    return make_frame(["O", "H", "H"], qm, ["O", "H", "H"] * len(mm_waters), mm, TIP3P * len(mm_waters),
                      mm_molecule=np.repeat(np.arange(len(mm_waters)), 3), embedding=embedding, qm_charge=0,
                      multiplicity=1, sampler="t", iteration=0, source="t", seed=0)


def test_single_pair_weight_is_the_quintic_switch():
    """One pair: w = s(r), 1 up to cutoff − width, 0 from the cutoff on."""
    rs = np.array([1.0, 3.9, 4.0, 4.3, 5.0, 5.5, 5.99, 6.0, 7.0])
    got = np.array([frame_weights(ion_frame(r))[1] for r in rs])
    np.testing.assert_allclose(got, quintic_switch(rs, 6.0, 2.0), atol=1e-12)
    assert got[0] == got[2] == 1.0 and got[-2] == got[-1] == 0.0


def test_boundary_crossings_of_an_ion_moving_through_the_shell():
    """An ion going out past the cutoff and back in (EMBEDDING: shell 4–6 Å) while a second molecule
    of the system stays outside: the weights per molecule are the quintic switch and 0; the ion
    crosses the cutoff twice and the inner edge twice, nothing else crosses."""
    rs = np.array([3.0, 3.5, 4.5, 5.5, 6.5, 7.0, 5.0, 3.9, 3.0])
    weights = np.array([molecule_weights(ion_frame(r), 2) for r in rs])
    np.testing.assert_allclose(weights[:, 0], quintic_switch(rs, 6.0, 2.0), atol=1e-12)
    assert not weights[:, 1].any()
    assert boundary_crossings(weights) == {"cutoff": 2, "inner": 2, "molecules": 1}
    assert boundary_crossings(weights[:4]) == {"cutoff": 0, "inner": 1, "molecules": 1}
    with pytest.raises(ValueError, match="n_frames, n_molecules"):
        boundary_crossings(weights[0])


def test_weights_are_per_group_smooth_and_their_gradient_is_exact():
    """A water moving out of the shell: all its sites share one weight, which falls monotonically from
    1 to 0 with continuous first and second derivatives (also when its closest pair changes); the
    autograd gradient of the weight equals central differences on every atom."""
    direction = np.array([0.6, 0.7, 0.39]) / np.linalg.norm([0.6, 0.7, 0.39])
    mm = Rotation.from_rotvec([0.4, 0.1, -0.7]).apply(WATER)
    xs = np.arange(2.5, 7.5, 0.002)
    w = []
    for x in xs:
        weights = frame_weights(water_frame([mm + x * direction]))
        assert weights[3] == weights[4] == weights[5]
        w.append(weights[3])
    w = np.array(w)
    assert w[0] == 1.0 and w[-1] == 0.0 and np.all(np.diff(w) <= 0.0) and np.any((w > 0.1) & (w < 0.9))
    h = xs[1] - xs[0]
    d2 = np.diff(w, 2) / h**2
    assert np.abs(np.diff(d2)).max() < 0.05 * np.abs(d2).max()  # no jump in the second derivative

    frame = water_frame([mm + xs[np.argmin(np.abs(w - 0.5))] * direction])
    pos = torch.tensor(frame.positions, dtype=torch.float64, requires_grad=True)
    is_qm = torch.as_tensor(frame.arrays["qm_mask"])
    group = torch.as_tensor(frame.arrays["mm_molecule"])
    weight = site_weights(pos, is_qm, group, torch.zeros(len(frame), dtype=torch.long), 6.0, 2.0)[3]
    assert 0.4 < float(weight.detach()) < 0.6
    (grad,) = torch.autograd.grad(weight, pos)
    step = 1e-5
    numeric = np.zeros((len(frame), 3))
    for a in range(len(frame)):
        for k in range(3):
            shifted = []
            for sign in (1, -1):
                f = frame.copy()
                f.positions[a, k] += sign * step
                shifted.append(frame_weights(f)[3])
            numeric[a, k] = (shifted[0] - shifted[1]) / (2 * step)
    np.testing.assert_allclose(grad.numpy(), numeric, atol=1e-8)
    assert np.abs(numeric[:3]).max() > 1e-2 and np.abs(numeric[3:]).max() > 1e-2  # QM atoms and MM sites


def test_weight_forces_are_minus_the_gradient_of_the_weighted_coupling():
    """weight_forces(φ) = −∇ Σ_a φ_a q_a w_g(a) at fixed φ, by central differences."""
    rng = np.random.default_rng(1)
    frame = water_frame([WATER + [2.9, 0.3, 0.1], Rotation.random(random_state=2).apply(WATER) + [4.2, 4.4, 2.2]])
    assert np.any((frame_weights(frame) > 0.0) & (frame_weights(frame) < 1.0))
    phi = rng.normal(size=len(frame))
    forces = weight_forces(frame, phi)

    def coupling(f) -> float:
        return float(np.sum(phi[3:] * weighted_charges(f)[3:]))

    step = 1e-5
    for a in range(len(frame)):
        for k in range(3):
            plus, minus = frame.copy(), frame.copy()
            plus.positions[a, k] += step
            minus.positions[a, k] -= step
            assert forces[a, k] == pytest.approx(-(coupling(plus) - coupling(minus)) / (2 * step), abs=1e-8)
    assert np.abs(forces).max() > 1e-2


def test_groups_must_have_integer_charge():
    """A group that splits a water is not a whole molecule: the Frame is refused, naming the group."""
    with pytest.raises(FrameError, match=r"MM group\(s\) \[0, 1\] have non-integer total charge \[-0\.417, 0\.417\]"):
        make_frame(["He"], np.zeros((1, 3)), ["O", "H", "H"], WATER + 3.0, TIP3P, mm_molecule=[0, 0, 1],
                   embedding=EMBEDDING, qm_charge=0, multiplicity=1, sampler="t", iteration=0, source="t", seed=0)


@pytest.fixture(scope="module")
def demo_frame():
    """The demo frame (ethanol in water, QM = resname ETH) cut with the demo's embedding."""
    from mlmm.config import load_config
    from mlmm.settings import Settings

    settings = Settings.from_config(load_config(ROOT / "config" / "config.yaml"))
    system = load_demo(settings.system.qm_selection)
    frame, _ = system.cut_frame(system.atoms.positions, settings.system.embedding, sampler="t", iteration=0,
                                source="demo", seed=0)
    assert (settings.system.embedding.cutoff, settings.system.embedding.switch_width) == (8.0, 1.5)
    return frame


def test_per_group_switch_keeps_the_potential_where_the_per_pair_switch_does_not(demo_frame):
    """Potential at the QM atoms of the embedded groups, relative to its QM mean: switched per group
    it stays within 0.1 V RMS of the unswitched potential of the same groups; switched per (QM atom,
    MM site) pair in the same shell it is off by far more (each QM atom sees a spurious net charge).

    Measured: per group 0.025 V RMS; per pair 1.78 V RMS, net charges −1.60…+1.87 e.
    """
    mask = demo_frame.arrays["qm_mask"]
    qm, mm = demo_frame.positions[mask], demo_frame.positions[~mask]
    q = demo_frame.get_initial_charges()[~mask]
    r = np.linalg.norm(qm[:, None] - mm[None], axis=2)
    w = frame_weights(demo_frame)[~mask]
    assert np.sum((w > 0) & (w < 1)) > 30  # many waters in the switching shell
    pair = quintic_switch(r, 8.0, 1.5)

    def rms_relative(v: np.ndarray) -> float:
        return float(np.sqrt(np.mean((v - v.mean()) ** 2)))

    full = COULOMB_EV_ANGSTROM * (q / r).sum(1)
    per_group = COULOMB_EV_ANGSTROM * (q * w / r).sum(1)
    per_pair = COULOMB_EV_ANGSTROM * (q * pair / r).sum(1)
    group_error, pair_error = rms_relative(per_group - full), rms_relative(per_pair - full)
    net = (q * pair).sum(1)
    print(f"per group {group_error:.3f} V RMS, per pair {pair_error:.3f} V RMS, "
          f"per-pair net charge {net.min():.2f}…{net.max():.2f} e")
    assert group_error <= 0.1
    assert pair_error > 1.0
    np.testing.assert_allclose((q * w).sum() * np.ones(len(qm)), (q * w).sum(), atol=1e-12)  # one net charge
    assert abs((q * w).sum()) < 1e-9 and np.abs(net).max() > 1.0


def test_model_field_input_is_the_potential_of_the_charges_pyscf_received(demo_frame):
    """Same frame: the model's input potential and field at each QM atom equal those of the point
    charges in PySCF's own ``mm_mol`` (coordinates in Bohr, charges) to ≤ 1e-5 V and V/Å."""
    from schnetpack import properties

    from mlmm.engines.pyscf_qmmm import embedded_scf
    from mlmm.model.field import FIELD_POTENTIAL, FIELD_VECTOR, QMPairList, frame_to_inputs
    from mlmm.model.nn import build_model
    from mlmm.embedding import frame_embedding

    training = settings_with(training={"n_atom_basis": 8, "n_interactions": 1, "n_rbf": 6}).training
    model = build_model(training, qm_charge_e=0, embedding=frame_embedding(demo_frame)).double()
    inputs = frame_to_inputs(demo_frame, QMPairList(training.cutoff), torch.float64)
    for module in model.input_modules:
        inputs = module(inputs)
    mask = demo_frame.arrays["qm_mask"]
    v_model = inputs[FIELD_POTENTIAL].detach().numpy()[mask]
    e_model = inputs[FIELD_VECTOR].detach().numpy()[mask]
    assert inputs[properties.R].dtype == torch.float64

    _, mf = embedded_scf(demo_frame, level_with(method="hf", basis="sto-3g"))
    sites_bohr, charges = mf.mm_mol.atom_coords(), mf.mm_mol.atom_charges()
    qm_bohr = mf.mol.atom_coords()
    d = qm_bohr[:, None] - sites_bohr[None]  # Bohr
    r = np.linalg.norm(d, axis=2)
    v_pyscf = HARTREE_TO_EV * (charges / r).sum(1)  # Hartree/e -> V
    e_pyscf = HARTREE_TO_EV / BOHR_TO_ANGSTROM * ((charges / r**3)[..., None] * d).sum(1)  # Eh/(e·Bohr) -> V/Å
    print(f"model vs PySCF charges: {np.abs(v_model - v_pyscf).max():.1e} V, {np.abs(e_model - e_pyscf).max():.1e} V/Å")
    np.testing.assert_allclose(v_model, v_pyscf, rtol=0, atol=1e-5)
    np.testing.assert_allclose(e_model, e_pyscf, rtol=0, atol=1e-5)
    assert not np.allclose(charges, demo_frame.get_initial_charges()[~mask])  # weighted: some charges scaled
