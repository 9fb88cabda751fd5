"""Environment scan (mlmm.model.environment_scan): geometry of the scan, a field-blind model is flat,
the PySCF reference curve decays with distance, and a field-aware model responds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dataclasses import replace

from mlmm.frames import make_frame
from mlmm.model.ensemble import Ensemble
from mlmm.model.environment_scan import environment_scan, scan_frames
from mlmm.model.nn import build_model
from conftest import embedding_with, settings_with

WATER_ANG = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
TIP3P_E = np.array([-0.834, 0.417, 0.417])
SETTINGS = settings_with(training={"n_atom_basis": 8, "n_interactions": 1, "n_rbf": 6, "cutoff": 4.0}).training
EMBEDDING = embedding_with(cutoff=8.0, switch_width=1.5)
LEVEL = settings_with(labeling={"level": {"method": "hf", "basis": "sto-3g"}}).labeling.level


@pytest.fixture
def frame():
    """QM water, an H-bond-donating TIP3P water (on the QM O's lone-pair side, one H pointing at
    the QM O, O–O 2.9 Å) and a far one."""
    u = -np.array([0.36, 0.46, 0.0]) / np.linalg.norm([0.36, 0.46, 0.0])  # away from the QM H's
    o = 2.9 * u
    a = np.deg2rad(104.52)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    donor = np.array([o, o - 0.9572 * u, o + 0.9572 * rot @ (-u)])
    far = WATER_ANG + np.array([0.0, 0.0, 5.5])
    return make_frame(["O", "H", "H"], WATER_ANG, ["O", "H", "H"] * 2, np.vstack([donor, far]),
                      np.tile(TIP3P_E, 2), mm_molecule=[4, 4, 4, 7, 7, 7], embedding=EMBEDDING, qm_charge=0, multiplicity=1, sampler="test", iteration=0,
                      source="test", seed=0)


def test_scan_moves_one_molecule_rigidly(frame):
    distances = (2.6, 3.0, 5.0)
    frames, info = scan_frames(frame, distances)
    assert info["anchor_site"] == 3 and info["molecule_sites"] == 3 and info["start_distance_ang"] == pytest.approx(2.9)
    for d, f in zip(distances, frames):
        assert len(f) == 6  # QM water + the scanned water only
        assert np.allclose(f.positions[:3], WATER_ANG)  # QM geometry fixed
        assert np.linalg.norm(f.positions[3] - f.positions[0]) == pytest.approx(d)
        assert np.allclose(f.positions[4:] - f.positions[3], frame.positions[4:6] - frame.positions[3])  # rigid


def test_scan_reference_and_models(frame):
    torch.manual_seed(0)
    models = {
        "with_field": Ensemble([build_model(SETTINGS, qm_charge_e=0, embedding=EMBEDDING).eval()]),
        "without_field": Ensemble([build_model(replace(SETTINGS, use_field=False), qm_charge_e=0,
                                               embedding=EMBEDDING).eval()]),
    }
    out = environment_scan(frame, LEVEL, models, (2.7, 3.2, 4.0, 6.0))
    ref = np.array(out["reference_ev"])
    assert ref[-1] == 0.0 and ref[0] < ref[1] < ref[2] < 0.0  # H-bond donor: attraction grows as it approaches
    assert np.allclose(out["models"]["without_field"]["curve_ev"], 0.0)  # blind to the environment
    assert out["models"]["without_field"]["mad_ev"] == pytest.approx(np.mean(np.abs(ref)))
    assert np.ptp(out["models"]["with_field"]["curve_ev"]) > 1e-4  # responds to the moved charges


def test_energy_error_analysis_separates_offset_and_environment():
    """A constant offset has no offset-free error; an error that grows as water approaches has ρ < 0."""
    from mlmm.model.stages import energy_error_analysis

    closest = np.array([1.8, 2.0, 2.4, 2.9, 3.5])
    constant = energy_error_analysis(np.full(5, 0.1), closest)
    assert constant["mean_error"] == pytest.approx(0.1) and constant["offset_free_mae"] == pytest.approx(0.0)
    blind = energy_error_analysis(0.3 / closest, closest)
    assert blind["rho_closest_mm"] == pytest.approx(-1.0) and blind["offset_free_mae"] > 0.01
