"""Physics checks of the field-aware model (untrained, double precision), for each representation
(SchNet, PaiNN): forces are -dE/dR on QM atoms and MM sites (embedding weights included), the MM
charges are a real input, symmetry, smooth embedding cutoff, batching, the gauge of the potential."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation
from schnetpack import properties
from schnetpack.data.loader import _atoms_collate_fn

from mlmm.frames import make_frame
from mlmm.model.ensemble import Ensemble, load_model
from mlmm.embedding import frame_weights
from mlmm.model.field import FIELD_POTENTIAL, MMField, QMPairList, frame_to_inputs
from mlmm.model.nn import build_model, energy_head
from conftest import embedding_with, settings_with

WATER_ANG = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
TIP3P_E = np.array([-0.834, 0.417, 0.417])
SETTINGS = settings_with(training={"n_atom_basis": 16, "n_interactions": 2, "n_rbf": 10, "cutoff": 4.0}).training
#: Groups switch off between 4.5 and 6 Å.
EMBEDDING = embedding_with(cutoff=6.0, switch_width=1.5)


REPRESENTATIONS = ("schnet", "painn")


@pytest.fixture(scope="module", params=REPRESENTATIONS)
def model(request) -> torch.nn.Module:
    """Untrained double-precision model (each representation) with a non-trivial energy reference."""
    torch.manual_seed(3)
    m = build_model(replace(SETTINGS, representation=request.param), qm_charge_e=0, embedding=EMBEDDING).double().eval()
    assert m.mlmm_settings["representation"] == request.param
    head = energy_head(m)
    with torch.no_grad():
        head.atomref_ev[1], head.atomref_ev[8] = -13.6, -2040.0
        head.energy_scale_ev.fill_(0.3)
    return m


def frame_with(mm_centers: list[np.ndarray], qm: np.ndarray = WATER_ANG, charges: np.ndarray | None = None) -> Atoms:
    """QM water + TIP3P waters (rigid, fixed orientation) at the given O positions (Å)."""
    mm = np.vstack([WATER_ANG + c for c in mm_centers]) if mm_centers else np.zeros((0, 3))
    q = np.tile(TIP3P_E, len(mm_centers)) if charges is None else charges
    return make_frame(
        ["O", "H", "H"], qm, ["O", "H", "H"] * len(mm_centers), mm, q,
        mm_molecule=np.repeat(np.arange(len(mm_centers)), 3), embedding=EMBEDDING,
        qm_charge=0, multiplicity=1, sampler="test", iteration=0, source="test", seed=0,
    )


@pytest.fixture
def frame() -> Atoms:
    """Three MM waters: two close, one inside the switching shell (4.5–6 Å) with weight 0 < w < 1."""
    f = frame_with([np.array([2.8, 0.5, 0.3]), np.array([-1.5, -2.5, 0.8]), np.array([0.3, 1.0, 5.5])])
    assert 0.1 < frame_weights(f)[-1] < 0.9
    return f


def evaluate(model: torch.nn.Module, frame: Atoms) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Å) of one frame."""
    out = model(frame_to_inputs(frame, QMPairList(SETTINGS.cutoff), torch.float64))
    return float(out[properties.energy][0].detach()), out[properties.forces].detach().numpy()


def test_forces_are_minus_energy_gradient(model, frame):
    """Autograd forces on QM atoms and MM sites equal central finite differences of E, whose MM
    charges carry the embedding weights (the switched water's weight moves with every atom)."""
    _, forces = evaluate(model, frame)
    h = 1e-5
    numeric = np.zeros_like(forces)
    for a in range(len(frame)):
        for k in range(3):
            shifted = []
            for sign in (1, -1):
                f = frame.copy()
                f.positions[a, k] += sign * h
                shifted.append(evaluate(model, f)[0])
            numeric[a, k] = -(shifted[0] - shifted[1]) / (2 * h)
    np.testing.assert_allclose(forces, numeric, atol=1e-6, rtol=1e-5)
    assert np.abs(forces[3:]).max() > 1e-3  # the MM sites do feel a force
    np.testing.assert_allclose(forces.sum(0), 0.0, atol=1e-9)  # no net force: E is translation invariant


def test_mm_charges_are_an_input(model, frame):
    """E depends on the MM charges; with all charges zero, the MM sites have no effect at all."""
    e0, _ = evaluate(model, frame)
    changed = frame.copy()
    q = changed.get_initial_charges()
    q[3] += 0.2
    changed.set_initial_charges(q)
    assert abs(evaluate(model, changed)[0] - e0) > 1e-4

    neutral = frame.copy()
    neutral.set_initial_charges(np.zeros(len(frame)))
    e_neutral, f_neutral = evaluate(model, neutral)
    moved = neutral.copy()
    moved.positions[3:] += np.random.default_rng(0).normal(scale=0.5, size=(len(frame) - 3, 3))
    e_moved, f_moved = evaluate(model, moved)
    assert e_moved == pytest.approx(e_neutral, abs=1e-10)
    assert np.abs(f_neutral[3:]).max() == 0.0 and np.abs(f_moved[3:]).max() == 0.0
    e_vacuum, f_vacuum = evaluate(model, frame_with([]))  # same QM atoms without any MM site
    assert e_vacuum == pytest.approx(e_neutral, abs=1e-10)
    np.testing.assert_allclose(f_vacuum, f_neutral[:3], atol=1e-10)
    assert abs(e_vacuum - e0) > 1e-3


def test_rotation_translation(model, frame):
    """E invariant and forces equivariant under a rigid rotation + translation of the whole frame."""
    e0, f0 = evaluate(model, frame)
    rot = Rotation.random(random_state=11)
    moved = frame.copy()
    moved.positions = rot.apply(frame.positions) + np.array([3.0, -7.0, 1.5])
    e1, f1 = evaluate(model, moved)
    assert e1 == pytest.approx(e0, abs=1e-9)
    np.testing.assert_allclose(f1, rot.apply(f0), atol=1e-9)


def cutoff_scan(model: torch.nn.Module, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energies (eV) and forces (eV/Å) while a TIP3P water moves along x (Å) past the embedding cutoff."""
    results = [evaluate(model, frame_with([np.array([2.8, 0.5, 0.3]), np.array([x, -0.3, 0.2])])) for x in xs]
    return np.array([r[0] for r in results]), np.array([r[1] for r in results])


def test_embedding_cutoff_is_smooth(model):
    """A charged MM water moving out through the embedding cutoff: E and forces have no jumps (second
    differences along the path stay tiny, unlike with a hard cutoff), and once no atom of it is within
    the cutoff it has no effect at all."""
    xs = np.arange(3.0, 7.2, 0.004)  # its group weight goes 1 -> 0 between x ≈ 3.5 and 7.0
    energies, forces = cutoff_scan(model, xs)
    assert energies.max() - energies.min() > 1e-2  # the scan does probe the field
    assert np.abs(np.diff(energies, 2)).max() < 1e-3
    assert np.abs(np.diff(forces, 2, axis=0)).max() < 1e-2
    e_without, _ = evaluate(model, frame_with([np.array([2.8, 0.5, 0.3])]))
    assert energies[-1] == pytest.approx(e_without, abs=1e-10)
    assert np.abs(forces[-1, 6:]).max() == 0.0

    hard = copy.deepcopy(model)  # same weights, switch squeezed into 1 mÅ: the same checks catch the jump
    hard.input_modules[1] = MMField(EMBEDDING.cutoff, 1e-3)
    hard_energies, hard_forces = cutoff_scan(hard, xs)
    assert np.abs(np.diff(hard_energies, 2)).max() > 1e-2
    assert np.abs(np.diff(hard_forces, 2, axis=0)).max() > 0.1


def test_qm_pair_list_excludes_mm(frame):
    """Neighbour pairs only among QM atoms, both directions, within the cutoff."""
    inputs = frame_to_inputs(frame, QMPairList(1.2))
    pairs = set(zip(inputs[properties.idx_i].tolist(), inputs[properties.idx_j].tolist()))
    assert pairs == {(0, 1), (1, 0), (0, 2), (2, 0)}  # H–H (1.51 Å) beyond 1.2 Å; MM atoms never


def test_batch_equals_single_frames(model, frame):
    """A batch of two frames (different sizes, overlapping in space) equals one-by-one evaluation:
    the field of one frame's MM charges never leaks into the other frame."""
    other = frame_with([np.array([0.5, -2.9, 0.0])], qm=WATER_ANG + np.array([0.1, 0.05, -0.1]))
    pair_list = QMPairList(SETTINGS.cutoff)
    batch = _atoms_collate_fn([frame_to_inputs(f, pair_list, torch.float64) for f in (frame, other)])
    out = model(batch)
    singles = [evaluate(model, f) for f in (frame, other)]
    np.testing.assert_allclose(out[properties.energy].detach().numpy(), [s[0] for s in singles], atol=1e-9)
    np.testing.assert_allclose(out[properties.forces].detach().numpy(), np.vstack([s[1] for s in singles]), atol=1e-9)


def test_ensemble_compute(model, frame):
    """Ensemble mean and σ: identical members give σ = 0; different members give σ > 0."""
    torch.manual_seed(5)
    second = build_model(SETTINGS, qm_charge_e=0, embedding=EMBEDDING).double().eval()
    same = Ensemble([model, model]).compute(frame)
    assert same["sigma_force"] == 0.0
    e, f = evaluate(model, frame)
    assert same["energy"] == pytest.approx(e, abs=1e-9)
    np.testing.assert_allclose(same["forces"], f, atol=1e-9)
    mixed = Ensemble([model, second]).compute(frame)
    spread = np.linalg.norm(np.std(mixed["member_forces"], axis=0, ddof=1), axis=-1).max()
    assert mixed["sigma_force"] == pytest.approx(spread, rel=1e-9) and spread > 0
    assert mixed["energy"] == pytest.approx(np.mean(mixed["energies"]))


def test_without_field_is_blind_to_mm(frame):
    """use_field=False (ablation): no field input module, E independent of MM sites and charges,
    zero MM forces, QM forces still -dE/dR."""
    torch.manual_seed(3)
    blind = build_model(replace(SETTINGS, use_field=False), qm_charge_e=0, embedding=EMBEDDING).double().eval()
    assert not any(isinstance(m, MMField) for m in blind.input_modules)
    e0, f0 = evaluate(blind, frame)
    moved = frame.copy()
    moved.positions[3:] += 0.7
    moved.set_initial_charges(-moved.get_initial_charges())
    e1, f1 = evaluate(blind, moved)
    assert e1 == pytest.approx(e0, abs=1e-12) and np.abs(f1[3:]).max() == 0.0
    e_vac, f_vac = evaluate(blind, frame_with([]))
    assert e_vac == pytest.approx(e0, abs=1e-12)
    np.testing.assert_allclose(f_vac, f0[:3], atol=1e-12)
    h = 1e-5
    shifted = [frame.copy(), frame.copy()]
    shifted[0].positions[1, 0] += h
    shifted[1].positions[1, 0] -= h
    numeric = -(evaluate(blind, shifted[0])[0] - evaluate(blind, shifted[1])[0]) / (2 * h)
    assert f0[1, 0] == pytest.approx(numeric, abs=1e-6)


class ShiftPotential(torch.nn.Module):
    """Input module adding a uniform potential ΔV (eV/e) at every atom: what a distant charged shell does."""

    def __init__(self, shift_v: float) -> None:
        super().__init__()
        self.shift_v = shift_v

    def forward(self, inputs: dict) -> dict:
        inputs[FIELD_POTENTIAL] = inputs[FIELD_POTENTIAL] + self.shift_v
        return inputs


@pytest.mark.parametrize("representation", REPRESENTATIONS)
@pytest.mark.parametrize("qm_charge_e", [0, 1])
def test_uniform_potential_shift_changes_energy_by_charge(frame, qm_charge_e, representation):
    """Gauge: a uniform shift ΔV changes the QM/MM energy by exactly Q·ΔV (the reference does the same).

    Fails if the atomic charges do not sum to the QM charge or the features see the absolute potential.
    """
    torch.manual_seed(5)
    m = build_model(replace(SETTINGS, representation=representation), qm_charge_e=qm_charge_e,
                    embedding=EMBEDDING).double().eval()
    e0, _ = evaluate(m, frame)
    for shift_v in (-3.0, 2.5):
        shifted = copy.deepcopy(m)
        shifted.input_modules.append(ShiftPotential(shift_v))
        e1, _ = evaluate(shifted, frame)
        assert e1 - e0 == pytest.approx(qm_charge_e * shift_v, abs=1e-9)


def test_member_saved_before_representation_loads_as_schnet(frame, tmp_path):
    """A member pickled before ``training.representation`` (module ``schnet``, no settings key) loads
    as SchNet with ``representation: schnet``, gives the same energy, and is accepted for a warm start
    of a fresh SchNet build (settings equal), which an unmarked old member would silently skip."""
    from schnetpack.representation import SchNet

    from mlmm.model.train import _warm_start

    schnet = replace(SETTINGS, representation="schnet")
    torch.manual_seed(3)
    current = build_model(schnet, qm_charge_e=0, embedding=EMBEDDING).double().eval()
    old = copy.deepcopy(current)
    del old.mlmm_settings["representation"]
    old.representation._modules["schnet"] = old.representation._modules.pop("net")
    torch.save(old, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt", "cpu")
    assert loaded.mlmm_settings == current.mlmm_settings and loaded.mlmm_settings["representation"] == "schnet"
    assert isinstance(loaded.representation.net, SchNet)
    assert evaluate(loaded, frame)[0] == pytest.approx(evaluate(current, frame)[0], abs=1e-10)
    assert _warm_start(build_model(schnet, qm_charge_e=0, embedding=EMBEDDING).double(), tmp_path / "old.pt")


def test_training_reads_qm_charge_from_labels(tmp_path):
    """The charge constraint comes from the labels DB; a DB mixing QM charges is refused by name."""
    from mlmm.labeling.db import write_label_db
    from mlmm.model.train import db_qm_charge

    def labelled(q: int, k: int) -> tuple:
        f = frame_with([np.array([2.8, 0.5, 0.3])])
        f.info["qm_charge"] = q
        props = {"energy": np.zeros(1), "forces": np.zeros((len(f), 3)), "qm_mask": f.arrays["qm_mask"].astype(float),
                 "mm_charges": f.get_initial_charges(), "mm_molecule": f.arrays["mm_molecule"].astype(float)}
        meta = {"level": "test", "status": "ok", "pyscf_version": "x", "frame_id": f"frame-{q}-{k}", "sampler": "t",
                "iteration": 0, "source": "t", "seed": 0, "qm_charge": q, "multiplicity": 1,
                "embedding_cutoff": EMBEDDING.cutoff, "embedding_switch_width": EMBEDDING.switch_width}
        return f, props, meta

    write_label_db(tmp_path / "one.db", [labelled(1, 0), labelled(1, 1)], level={"method": "hf"})
    assert db_qm_charge(tmp_path / "one.db") == 1
    write_label_db(tmp_path / "mixed.db", [labelled(0, 0), labelled(1, 1)], level={"method": "hf"})
    with pytest.raises(ValueError, match="mixed.db.*qm_charge"):
        db_qm_charge(tmp_path / "mixed.db")
