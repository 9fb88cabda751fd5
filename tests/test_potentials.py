"""QM/MM potentials from mlmm.potentials: each named potential equals its engines called directly
(the code paths the samplers, AL and production used before the factory), and its forces are
-dE/dR for the xTB/MM and the ensemble potentials."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import DEMO, load_demo, solute_with_nearest_waters
from mlmm.engines.xtb import XTBEmbeddingTerm, XTBTerm, xtb_charges
from mlmm.mm import OpenMMTerm
from mlmm.model.ensemble import Ensemble
from mlmm.potentials import POTENTIALS, QMMMCalculator, build_potential, ensemble_potential
from mlmm.system import System
from test_sampling_uncertainty import EMBEDDING, member

needs_xtb = pytest.mark.skipif(shutil.which("xtb") is None, reason="needs the xtb program (apt-get install xtb)")


@pytest.fixture(scope="module")
def demo() -> System:
    return load_demo()


@pytest.fixture(scope="module")
def positions(demo) -> np.ndarray:
    """A demo geometry off the input one (so nothing is evaluated at a cached start)."""
    return demo.atoms.positions + np.random.default_rng(3).normal(scale=0.03, size=demo.atoms.positions.shape)


def evaluate(calc, system: System, positions_ang: np.ndarray) -> tuple[float, np.ndarray]:
    atoms = system.atoms.copy()
    atoms.positions = positions_ang
    atoms.calc = calc
    return float(atoms.get_potential_energy()), atoms.get_forces(apply_constraint=False)


def engines_directly(system: System, positions_ang: np.ndarray, terms, mm: OpenMMTerm) -> tuple[float, np.ndarray]:
    """Energy and forces summed from the QM terms on the cut Frame and the MM force field, by hand."""
    frame, index = system.cut_frame(positions_ang, EMBEDDING, sampler="t", iteration=0, source="t", seed=0)
    energy, forces = mm.energy_forces(positions_ang)
    for term in terms:
        out = term.compute(frame)
        energy += float(out["energy"])
        forces[index] += np.asarray(out["forces"], float)
    return energy, forces


def ensemble(delta: str = "none") -> Ensemble:
    models = [member(s) for s in (1, 2)]
    for m in models:
        m.mlmm_settings = {**m.mlmm_settings, "delta": delta}
    return Ensemble(models, "cpu")


def assert_same(a: tuple[float, np.ndarray], b: tuple[float, np.ndarray]) -> None:
    assert a[0] == pytest.approx(b[0], rel=0, abs=1e-9)
    np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-9)


def test_xtb_potential_is_the_samplers_xtb_mm(demo, positions):
    """``xtb`` = tblite GFN2-xTB + MM with the fixed GFN2 charges of the start geometry."""
    q = xtb_charges(demo.atoms.get_chemical_symbols()[: demo.n_qm], demo.whole_qm_positions(demo.atoms.positions),
                    demo.qm_charge, demo.multiplicity)
    mm = OpenMMTerm(demo, qm_charges_e=q)
    calc = build_potential("xtb", demo, embedding=EMBEDDING)
    assert_same(evaluate(calc, demo, positions), engines_directly(demo, positions, [XTBTerm()], mm))
    assert np.abs(calc.results["forces"][demo.n_qm :]).max() > 1e-3  # the waters feel the QM charges


@needs_xtb
def test_point_charge_potential_is_xtb_program_plus_mm(demo, positions):
    """``xtb_point_charges`` = xtb in the Frame's point charges (forces on MM sites) + MM without QM charges."""
    mm = OpenMMTerm(demo)
    calc = build_potential("xtb_point_charges", demo, embedding=EMBEDDING)
    assert_same(evaluate(calc, demo, positions), engines_directly(demo, positions, [XTBEmbeddingTerm()], mm))


def test_ensemble_potential_is_ensemble_plus_mm(demo, positions):
    """``ensemble`` = ensemble mean on the Frame + MM without QM charges; σ passes through."""
    ens = ensemble()
    mm = OpenMMTerm(demo)
    calc = ensemble_potential(demo, ens, embedding=EMBEDDING)
    assert_same(evaluate(calc, demo, positions), engines_directly(demo, positions, [ens], mm))
    assert calc.results["sigma_force"] > 0
    with pytest.raises(ValueError, match="training.delta 'none'; use 'ensemble'"):
        build_potential("delta", demo, embedding=EMBEDDING, ensemble=ens)


@needs_xtb
def test_delta_potential_is_baseline_plus_correction_plus_mm(demo, positions):
    """``delta`` = xtb point-charge baseline + the members' correction + MM; chosen from the members."""
    ens = ensemble("xtb")
    mm = OpenMMTerm(demo)
    calc = ensemble_potential(demo, ens, embedding=EMBEDDING)
    assert_same(evaluate(calc, demo, positions), engines_directly(demo, positions, [ens, XTBEmbeddingTerm()], mm))
    assert calc.results["sigma_force"] == pytest.approx(ens.compute(
        demo.cut_frame(positions, EMBEDDING, sampler="t", iteration=0, source="t", seed=0)[0])["sigma_force"])
    with pytest.raises(ValueError, match="use 'delta'"):
        build_potential("ensemble", demo, embedding=EMBEDDING, ensemble=ens)


def test_unknown_or_incomplete_potentials_are_refused(demo):
    with pytest.raises(ValueError, match="unknown QM/MM potential 'dftb'"):
        build_potential("dftb", demo, embedding=EMBEDDING)
    with pytest.raises(ValueError, match="needs the trained ensemble"):
        build_potential("ensemble", demo, embedding=EMBEDDING)
    assert POTENTIALS == ("xtb", "xtb_point_charges", "ensemble", "delta")


def test_members_refuse_another_embedding(demo, positions):
    """Members trained with one embedding, MD asked for another: an error naming both (at build time),
    and a Frame cut with another embedding is refused by the members too."""
    from dataclasses import replace

    other = replace(EMBEDDING, switch_width=EMBEDDING.switch_width + 0.5)
    with pytest.raises(ValueError, match=r"system\.embedding: embedding \{'cutoff': 6\.0, 'switch_width': 2\.0\} "
                                         r"differs from .* trained with, \{'cutoff': 6\.0, 'switch_width': 1\.5\}"):
        ensemble_potential(demo, ensemble(), embedding=other)
    frame, _ = demo.cut_frame(positions, other, sampler="t", iteration=0, source="t", seed=0)
    with pytest.raises(ValueError, match="differs from the one the ensemble members were trained with"):
        ensemble().compute(frame)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> System:
    return solute_with_nearest_waters(DEMO, "ETH", 6, tmp_path_factory.mktemp("cluster") / "eth6.pdb")


def numerical_forces(calc: QMMMCalculator, system: System, atoms_k: list[tuple[int, int]], h: float) -> np.ndarray:
    out = []
    for atom, k in atoms_k:
        energies = []
        for sign in (1.0, -1.0):
            pos = system.atoms.positions.copy()
            pos[atom, k] += sign * h
            energies.append(evaluate(calc, system, pos)[0])
        out.append(-(energies[0] - energies[1]) / (2.0 * h))
    return np.array(out)


def test_xtb_potential_forces_are_minus_energy_gradient(cluster):
    """Factory xTB/MM potential on ethanol + 6 waters: forces = -dE/dR on QM atoms and water sites
    (MM on the double-precision Reference platform)."""
    calc = build_potential("xtb", cluster, embedding=EMBEDDING, mm_platform="Reference")
    _, forces = evaluate(calc, cluster, cluster.atoms.positions)
    check = [(0, 0), (2, 1), (5, 2), (8, 0), (9, 0), (10, 1), (13, 2), (20, 0)]
    num = numerical_forces(calc, cluster, check, h=1e-3)
    np.testing.assert_allclose([forces[a, k] for a, k in check], num, atol=3e-4)


def test_ensemble_potential_forces_are_minus_energy_gradient(cluster):
    """Factory MLP/MM potential (float64 members) on ethanol + 6 waters: forces = -dE/dR, including
    the MM sites the field input sees."""
    calc = ensemble_potential(cluster, ensemble(), embedding=EMBEDDING, mm_platform="Reference")
    _, forces = evaluate(calc, cluster, cluster.atoms.positions)
    check = [(0, 0), (1, 2), (4, 1), (8, 0), (9, 0), (10, 1), (14, 2), (21, 0)]
    num = numerical_forces(calc, cluster, check, h=1e-4)
    np.testing.assert_allclose([forces[a, k] for a, k in check], num, atol=1e-6)
    qm = calc.qm_term.compute(cluster.cut_frame(cluster.atoms.positions, EMBEDDING, sampler="t", iteration=0,
                                                source="t", seed=0)[0])
    assert np.abs(qm["forces"][cluster.n_qm :]).max() > 1e-4  # the model's field input acts on MM sites
