"""Uncertainty-biased exploration: σ_E² bias energy, its forces (finite differences) and its use in MD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlmm.frames import make_frame
from mlmm.model.ensemble import Ensemble
from mlmm.model.nn import build_model, energy_head
from mlmm.sampling.uncertainty import SigmaBiasedEnsemble, biased_term, sigma_bias
from mlmm.settings import BiasSettings
from conftest import embedding_with, settings_with

SETTINGS = settings_with(training={"n_atom_basis": 16, "n_interactions": 2, "n_rbf": 10, "cutoff": 4.0}).training
#: The members' embedding (and so that of the frames and potentials they are used with).
EMBEDDING = embedding_with(cutoff=6.0, switch_width=1.5)
WATER = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])


def member(seed: int, embedding=EMBEDDING) -> torch.nn.Module:
    """An untrained float64 member (seeded) trained, as it were, with ``embedding``."""
    torch.manual_seed(seed)
    m = build_model(SETTINGS, qm_charge_e=0, embedding=embedding).double().eval()
    head = energy_head(m)
    with torch.no_grad():
        head.atomref_ev[1], head.atomref_ev[8] = -13.6, -2040.0
        head.energy_scale_ev.fill_(0.3)
    return m


@pytest.fixture(scope="module")
def ensemble() -> Ensemble:
    return Ensemble([member(s) for s in (1, 2, 3)])


def frame():
    mm = np.vstack([WATER + [2.8, 0.5, 0.3], WATER + [-1.5, -2.5, 0.8]])
    return make_frame(["O", "H", "H"], WATER + [0.05, -0.03, 0.02], ["O", "H", "H"] * 2, mm, [-0.834, 0.417, 0.417] * 2,
                      mm_molecule=[0, 0, 0, 1, 1, 1], embedding=EMBEDDING, qm_charge=0, multiplicity=1, sampler="test", iteration=0, source="test", seed=0)


def test_bias_formula():
    e = np.array([1.0, 1.2, 0.8])
    f = np.zeros((3, 2, 3))
    energy, forces, var = sigma_bias(e, f, n_qm=2, strength_ev=0.5, width_ev=0.1)
    assert var == pytest.approx(0.04)
    assert energy == pytest.approx(0.5 * (np.exp(-0.04 / (2 * 0.01)) - 1.0))
    assert np.all(forces == 0.0)
    assert sigma_bias(np.ones(3), f, 2, 0.5, 0.1)[0] == 0.0  # members agree: no bias
    with pytest.raises(ValueError):
        sigma_bias(e[:1], f[:1], 2, 0.5, 0.1)


def test_bias_forces_are_minus_gradient(ensemble):
    """Analytic bias forces on QM atoms and MM sites match central differences of the bias energy."""
    term = SigmaBiasedEnsemble(ensemble, strength_ev=0.3, width_ev=0.05)
    fr = frame()
    out = term.compute(fr)
    assert out["bias_energy"] < 0 and out["sigma_energy"] > 0
    assert out["energy"] == pytest.approx(out["unbiased_energy"] + out["bias_energy"])
    bias_forces = out["forces"] - ensemble.compute(fr)["forces"]
    h = 1e-4
    for atom in (0, 2, 3, 7):  # QM O, QM H, MM O, MM H
        for k in range(3):
            plus, minus = fr.copy(), fr.copy()
            plus.positions[atom, k] += h
            minus.positions[atom, k] -= h
            grad = (term.compute(plus)["bias_energy"] - term.compute(minus)["bias_energy"]) / (2 * h)
            assert bias_forces[atom, k] == pytest.approx(-grad, rel=1e-4, abs=1e-7)


def test_biased_term_selection(ensemble):
    assert biased_term(ensemble, settings_with().al.bias) is ensemble  # schema default: kind none
    assert biased_term(ensemble, BiasSettings(kind="none", strength=1.0, width=0.1)) is ensemble
    term = biased_term(ensemble, BiasSettings(kind="sigma", strength=0.2, width=0.02))
    assert isinstance(term, SigmaBiasedEnsemble) and term.strength_ev == 0.2
    with pytest.raises(ValueError, match="al.bias.kind"):
        biased_term(ensemble, BiasSettings(kind="metad", strength=0.2, width=0.02))


def test_bias_pushes_towards_uncertainty(ensemble):
    """A small step along the bias forces raises the committee energy variance, a step against
    them lowers it (the bias is a monotonically decreasing function of σ_E²)."""
    term = SigmaBiasedEnsemble(ensemble, strength_ev=1.0, width_ev=0.3)
    fr = frame()
    out = term.compute(fr)
    f_bias = out["forces"] - ensemble.compute(fr)["forces"]
    step = 0.01 * f_bias / np.abs(f_bias).max()  # at most 0.01 Å per component
    variances = []
    for sign in (-1.0, 1.0):
        moved = fr.copy()
        moved.positions = fr.positions + sign * step
        variances.append(term.compute(moved)["sigma_energy"] ** 2)
    assert variances[0] < out["sigma_energy"] ** 2 < variances[1]


def test_biased_mlp_md_runs_and_reports_unbiased_sigma(ensemble, tmp_path):
    """The wrapper is a drop-in QM term for the MLP/MM driver used by al.explore."""
    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.potentials import build_potential

    from test_sampling_modes import small_system

    system = small_system(tmp_path, n_waters=4)
    kwargs = dict(steps=6, timestep_fs=0.25, temperature_K=300.0, friction_per_fs=0.01, stride=3, seed=1,
                  sigma_stop=1e6, max_force=1e6, sampler="al_explore", iteration=1, source="t")
    bias = BiasSettings(kind="sigma", strength=1.0, width=0.3)
    plain = run_mlp_md(system, build_potential("ensemble", system, embedding=EMBEDDING, ensemble=ensemble), **kwargs)
    biased = run_mlp_md(system, build_potential("ensemble", system, embedding=EMBEDDING, ensemble=ensemble, bias=bias),
                        **kwargs)
    assert plain.steps_done == biased.steps_done == 6 and len(biased.frames) == 2
    # same start: the first recorded σ differ only through the bias acting for 3 steps
    assert all(s > 0 for s in biased.sigmas) and biased.potential_energies != plain.potential_energies
