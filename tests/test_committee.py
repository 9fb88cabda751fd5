"""The batched committee and the Frame-free MD term against the members run one by one on cut Frames."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import load_demo, settings_with
from mlmm.model.committee import CommitteeMDTerm
from mlmm.model.ensemble import Ensemble, committee_results, predict
from mlmm.model.field import frame_to_inputs
from mlmm.model.nn import build_model, energy_head
from mlmm.potentials import QMMMCalculator
from mlmm.settings import EmbeddingSettings
from mlmm.system import System

EMBEDDING = EmbeddingSettings(cutoff=6.0, switch_width=1.5)


@pytest.fixture(scope="module")
def demo() -> System:
    return load_demo()


def members(n: int, dtype: torch.dtype = torch.float64, **training) -> list[torch.nn.Module]:
    """``n`` seeded untrained members of the default architecture changed by ``training``, with
    element references and an energy scale of their own, so every term of the energy head
    contributes and differs between members."""
    settings = replace(settings_with().training, n_atom_basis=16, n_interactions=2, **training)
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        m = build_model(settings, qm_charge_e=0, embedding=EMBEDDING).to(dtype).eval()
        with torch.no_grad():
            energy_head(m).energy_scale_ev.fill_(0.5 + 0.1 * seed)
            energy_head(m).atomref_ev[[1, 6, 8]] = torch.tensor([-13.6, -1029.0, -2041.0], dtype=dtype) * (1 + 0.01 * seed)
        out.append(m)
    return out


def one_by_one(ens: Ensemble, frame) -> dict:
    """The ensemble's outputs with each member run through its own schnetpack module graph."""
    energies, forces = predict(ens.models, frame_to_inputs(frame, ens.pair_list, ens.dtype))
    return committee_results(energies[:, 0], forces)


def cut(system: System, positions: np.ndarray):
    return system.cut_frame(positions, EMBEDDING, sampler="t", iteration=0, source="t", seed=0)[0]


@pytest.mark.parametrize("training", [{"representation": "schnet"}, {"representation": "painn"},
                                      {"representation": "schnet", "use_field": False}],
                         ids=["schnet", "painn", "no-field"])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)], ids=["float64", "float32"])
def test_batched_committee_equals_members_one_by_one(demo, training, dtype, tol):
    """One grouped pass over 4 members gives each member's energy and forces on QM atoms
    and MM sites, as the members' own schnetpack modules give them one after another."""
    ens = Ensemble(members(4, dtype, **training))
    assert ens.committee is not None and ens.committee.n_members == 4
    frame = cut(demo, demo.atoms.positions)
    batched, reference = ens.compute(frame), one_by_one(ens, frame)
    scale = np.abs(reference["member_forces"]).max()
    assert scale > 0.1
    np.testing.assert_allclose(batched["energies"], reference["energies"], rtol=0, atol=tol * 100)
    np.testing.assert_allclose(batched["member_forces"], reference["member_forces"], rtol=0, atol=tol * scale)
    assert batched["sigma_force"] == pytest.approx(reference["sigma_force"], abs=tol * scale)
    mm_forces = np.abs(reference["member_forces"][:, demo.n_qm:]).max()
    assert (mm_forces > 1e-4) == training.get("use_field", True)  # the field input acts on the MM sites


def test_members_of_different_architectures_run_one_by_one(demo):
    """Members that cannot be stacked (different feature sizes) keep the one-by-one path."""
    models = members(1) + [build_model(replace(settings_with().training, n_atom_basis=8), qm_charge_e=0,
                                       embedding=EMBEDDING).double().eval()]
    ens = Ensemble(models)
    assert ens.committee is None
    frame = cut(demo, demo.atoms.positions)
    np.testing.assert_allclose(ens.compute(frame)["energies"], one_by_one(ens, frame)["energies"], atol=1e-12)


def test_md_term_equals_the_frame_cut_along_a_trajectory(demo):
    """The Frame-free MD term (neighbour list with a skin, image shifts fixed at its builds) gives
    the Frame path's energy, forces on every atom and σ at each step of a random walk that moves
    waters across the embedding cutoff, rebuilds the list only now and then, and survives a
    molecule wrapped into the box at another image."""
    ens = Ensemble(members(3))
    term = CommitteeMDTerm.for_system(demo, ens, EMBEDDING)
    assert term is not None and term.skin_ang == pytest.approx(2.0)
    frame_path = QMMMCalculator(demo, ens, None, EMBEDDING)
    rng = np.random.default_rng(5)
    pos = demo.atoms.positions.copy()
    in_embedding = []
    for step in range(24):
        pos = pos + rng.normal(scale=0.12, size=pos.shape)
        if step == 12:  # wrap the water closest to the QM region by one box edge: the same physics at another image
            k = int(np.argmin(np.linalg.norm(pos[demo.molecule_starts[:-1]] - pos[0], axis=1)))
            pos[demo.molecule_starts[k]:demo.molecule_starts[k + 1], 0] += demo.box_ang[0]
        if step == 18:  # and the QM region by one edge in y, all at once
            pos[:demo.n_qm, 1] -= demo.box_ang[1]
        e, f, extra = term.energy_forces(pos)
        e_ref, f_ref, extra_ref = frame_path.qm_energy_forces(pos)
        assert e == pytest.approx(e_ref, rel=0, abs=1e-9)
        np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-9)
        assert extra["sigma_force"] == pytest.approx(extra_ref["sigma_force"], abs=1e-9)
        in_embedding.append(frozenset(np.flatnonzero(np.abs(f_ref[demo.n_qm:]).sum(1) > 0)))
    assert 2 <= term.rebuilds <= 12
    assert len(set(in_embedding)) > 5  # sites entered and left the embedding during the walk


def test_md_term_lists_qm_pairs_within_cutoff_plus_skin(demo):
    """With a 2 Å representation cutoff and a 1 Å skin the MD term lists only the QM pairs within
    3 Å at its builds, yet gives the members' own one-by-one energies and forces (schnetpack's
    pair list at every step) while bonds and geminal pairs cross the cutoff."""
    models = members(2, representation="painn", cutoff=2.0)
    term = CommitteeMDTerm(demo, Ensemble(models).committee, EMBEDDING, skin_ang=1.0)
    reference = Ensemble(models)
    reference.committee = None  # the members one by one through their schnetpack module graphs
    frame_path = QMMMCalculator(demo, reference, None, EMBEDDING)
    n_qm = demo.n_qm
    rng = np.random.default_rng(3)
    pos = demo.atoms.positions.copy()
    within_cutoff = []
    for _ in range(30):
        pos = pos + rng.normal(scale=0.03, size=pos.shape)
        e, f, _ = term.energy_forces(pos)
        e_ref, f_ref, _ = frame_path.qm_energy_forces(pos)
        assert e == pytest.approx(e_ref, rel=0, abs=1e-9)
        np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-9)
        d = np.linalg.norm(pos[:n_qm, None] - pos[None, :n_qm], axis=-1)
        within_cutoff.append(frozenset(zip(*np.nonzero(np.triu(d < 2.0, 1)))))
        assert len(term._geometry.idx_i) < 2 * n_qm * (n_qm - 1)  # 2 members: some pairs left out
    assert 2 <= term.rebuilds < 30
    assert len(set(within_cutoff)) > 1  # pairs crossed the cutoff during the walk


def test_md_term_only_where_it_is_exact(demo):
    """No Frame-free term for Δ-learned members or a box too short for a skin beyond the cutoff."""
    models = members(2)
    assert CommitteeMDTerm.for_system(demo, Ensemble(models), EMBEDDING) is not None
    assert CommitteeMDTerm.for_system(demo, Ensemble(models), EmbeddingSettings(cutoff=9.2, switch_width=1.5)) is None
    for m in models:
        m.mlmm_settings = {**m.mlmm_settings, "delta": "xtb"}
    assert CommitteeMDTerm.for_system(demo, Ensemble(models), EMBEDDING) is None
