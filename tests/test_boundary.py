"""Covalent QM/MM boundaries (mlmm.boundary): link atoms, boundary charges, the partitioned OpenMM
System, and the total force (QM + MM + link-atom projection) against finite differences of the
total QM/MM energy, with PySCF and with the model. Alanine dipeptide (amber14) with the Ala
side chain (CB and its hydrogens) as QM region, cut at CA–CB: the QM region is methane."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import openmm
import openmm.unit as unit
import pytest

from conftest import DEMO, ROOT, embedding_with, level_with
from mlmm.boundary import CHARGE_TOLERANCE_E, LINK_BOND_ANG
from mlmm.engines.pyscf_qmmm import PySCFTerm
from mlmm.frames import FrameError, link_atoms, read_frames, validate_frame, write_frames
from mlmm.mm import OpenMMTerm
from mlmm.model.ensemble import Ensemble
from mlmm.potentials import QMMMCalculator, build_potential
from mlmm.system import load_system
from test_potentials import numerical_forces
from test_sampling_uncertainty import member

DATA = Path(__file__).parent / "data"
ALA2 = DATA / "ala2.pdb"
SIDE_CHAIN = "resname ALA and name CB HB1 HB2 HB3"
EMBEDDING = embedding_with(cutoff=6.0, switch_width=1.5)
INFO = dict(sampler="t", iteration=0, source="t", seed=0)
DEMO_FF = ROOT / "data" / "demo" / "ethanol_gaff2.xml"


def ala2(selection: str = SIDE_CHAIN, **keys):
    return load_system(ALA2, selection, force_field=["amber14-all.xml"], nonbonded_method="none", **{"link_atoms": True, **keys})


@pytest.fixture(scope="module")
def system():
    return ala2()


def names(system, indices) -> list[str]:
    return [f"{system.resnames[i]}:{system.atom_names[i]}" for i in indices]


def ff_charges(system) -> np.ndarray:
    """The force field's charges in mlmm order, straight from its NonbondedForce."""
    nb = next(f for f in system.mm.system.getForces() if isinstance(f, openmm.NonbondedForce))
    q = [nb.getParticleParameters(int(i))[0].value_in_unit(unit.elementary_charge) for i in system.original_index]
    return np.array(q)


def test_link_atom_sits_on_the_bond_at_a_CH_length_and_charges_stay_integer(system):
    (link,) = system.links
    assert names(system, [link.qm, link.mm]) == ["ALA:CB", "ALA:CA"]
    assert sorted(names(system, link.neighbours)) == ["ALA:C", "ALA:HA", "ALA:N"]
    assert link.ratio == pytest.approx(LINK_BOND_ANG / 1.526)  # amber CT-CT r0 = 1.526 Å
    frame, index = system.cut_frame(system.atoms.positions, EMBEDDING, **INFO)
    rows, ratios = link_atoms(frame)
    (l_atom, q1, m1), = rows
    assert frame.get_chemical_symbols()[l_atom] == "H" and frame.arrays["qm_mask"][l_atom] and index[l_atom] == -1
    assert index[q1] == link.qm and index[m1] == link.mm
    r_q1_m1 = np.linalg.norm(frame.positions[m1] - frame.positions[q1])
    assert np.linalg.norm(frame.positions[l_atom] - frame.positions[q1]) == pytest.approx(ratios[0] * r_q1_m1, abs=1e-12)
    # charge shift: CA's charge and the QM part's deficit moved onto N, HA, C; every residue integer, total kept
    q_ff = ff_charges(system)
    deficit = q_ff[: system.n_qm].sum() - 0
    expected = q_ff.copy()
    expected[: system.n_qm] = 0.0
    expected[list(link.neighbours)] += (q_ff[link.mm] + deficit) / 3.0
    expected[link.mm] = 0.0
    np.testing.assert_allclose(system.charges_e, expected, atol=1e-12)
    assert system.charges_e.sum() == pytest.approx(q_ff.sum(), abs=1e-10)
    for mol in np.unique(system.molecule_index[system.n_qm :]):
        total = system.charges_e[system.molecule_index == mol].sum()
        assert total == pytest.approx(round(total), abs=1e-10)
    # the link atom survives extxyz, and a Frame whose link atom left its bond is refused
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "f.extxyz"
    write_frames(path, [frame])
    assert link_atoms(read_frames(path)[0])[0].tolist() == rows.tolist()
    moved = frame.copy()
    moved.positions[q1] += 0.1
    with pytest.raises(FrameError, match="off its place"):
        validate_frame(moved)


def test_partition_keeps_boundary_terms_and_uses_the_boundary_charges(system):
    """On the OpenMM System: bonded terms entirely inside the QM region go, every term with an MM
    atom stays (CA–CB bond, angles and torsions across the cut); the NonbondedForce carries the
    boundary charges; 1-4 pairs across the cut keep their Lennard-Jones and lose their charge."""
    original = system.mm.system
    qm = set(system.original_index[: system.n_qm].tolist())
    part = OpenMMTerm(system, platform="Reference").openmm_system

    def terms(sys_, kind):
        force = next(f for f in sys_.getForces() if isinstance(f, kind))
        if kind is openmm.HarmonicBondForce:
            return {tuple(force.getBondParameters(k)[:2]) for k in range(force.getNumBonds())}
        if kind is openmm.HarmonicAngleForce:
            return {tuple(force.getAngleParameters(k)[:3]) for k in range(force.getNumAngles())}
        return {tuple(force.getTorsionParameters(k)[:5]) for k in range(force.getNumTorsions())}

    for kind, n_atoms, n_inside in ((openmm.HarmonicBondForce, 2, 3), (openmm.HarmonicAngleForce, 3, 3),
                                    (openmm.PeriodicTorsionForce, 4, 0)):
        before, after = terms(original, kind), terms(part, kind)
        inside = {t for t in before if set(t[:n_atoms]) <= qm}
        assert after == before - inside
        assert len(inside) == n_inside  # CB-HB bonds, HB-CB-HB angles; a methyl has no torsion of its own
        assert {t for t in after if set(t[:n_atoms]) & qm}  # CB-CA, HB-CB-CA, HB-CB-CA-N, ... stay
    nb_before = next(f for f in original.getForces() if isinstance(f, openmm.NonbondedForce))
    nb = next(f for f in part.getForces() if isinstance(f, openmm.NonbondedForce))
    charges = np.array([nb.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in range(nb.getNumParticles())])
    np.testing.assert_allclose(charges, system.mm_charges_file_order(), atol=1e-12)
    (link,) = system.links
    m2 = set(system.original_index[list(link.neighbours)].tolist())
    checked = 0
    for e in range(nb.getNumExceptions()):
        a, b, qq, sigma, eps = nb.getExceptionParameters(e)
        a0, b0, qq0, sigma0, eps0 = nb_before.getExceptionParameters(e)
        qq, qq0 = qq.value_in_unit(unit.elementary_charge**2), qq0.value_in_unit(unit.elementary_charge**2)
        if (a in qm) != (b in qm) and eps0.value_in_unit(unit.kilojoule_per_mole) != 0.0:  # QM-MM 1-4 pair
            assert qq == 0.0 and eps == eps0 and sigma == sigma0
            checked += 1
        elif not ({a, b} & qm) and ({a, b} & m2) and qq0 != 0.0:  # MM 1-4 pair with a shifted charge
            assert qq == pytest.approx(charges[a] * charges[b] / 1.2, rel=1e-12)
            checked += 1
    assert checked >= 6


def boundary_coordinates(system) -> list[tuple[int, int]]:
    """Q1, M1, two M2 atoms, a QM hydrogen and MM atoms beyond the boundary (ACE, NME), x/y/z mixed."""
    (link,) = system.links
    far = [i for i in range(system.n_qm, len(system.atoms)) if system.resnames[i] in ("ACE", "NME")]
    atoms = [link.qm, link.mm, link.neighbours[0], link.neighbours[2], 1, far[1], far[-2]]
    return [(a, k % 3) for k, a in enumerate(atoms)]


def total_forces(calc, system):
    atoms = system.atoms.copy()
    atoms.calc = calc
    return atoms.get_forces(apply_constraint=False)


def test_total_force_is_minus_gradient_with_pyscf_labels(system):
    """HF/STO-3G of methane (CB + link H) in the weighted MM charges + amber14 MM (Reference
    platform): total forces, link-atom projection included, match central differences."""
    calc = QMMMCalculator(system, PySCFTerm(level_with(method="hf", basis="sto-3g", conv_tol=1e-11)),
                          OpenMMTerm(system, platform="Reference"), EMBEDDING)
    forces = total_forces(calc, system)
    check = boundary_coordinates(system)
    num = numerical_forces(calc, system, check, h=1e-3)
    np.testing.assert_allclose([forces[a, k] for a, k in check], num, atol=5e-5)
    assert np.abs(num).max() > 0.05  # the check sees real forces


def test_total_force_is_minus_gradient_with_the_model(system):
    """The same with an (untrained, float64) ensemble as QM term: the field input's MM forces and the
    link-atom projection give −∇ of the total energy."""
    calc = QMMMCalculator(system, Ensemble([member(s, EMBEDDING) for s in (1, 2)], "cpu"),
                          OpenMMTerm(system, platform="Reference"), EMBEDDING)
    forces = total_forces(calc, system)
    check = boundary_coordinates(system)
    num = numerical_forces(calc, system, check, h=1e-4)
    np.testing.assert_allclose([forces[a, k] for a, k in check], num, atol=2e-6)


def test_cut_bonds_without_link_atoms_are_listed():
    with pytest.raises(ValueError) as err:
        ala2(link_atoms=False)
    message = str(err.value)
    assert "cuts 1 covalent bond" in message and "CB (ALA 2" in message and "CA (ALA 2" in message
    assert "system.link_atoms: true" in message


def test_cuts_through_polar_or_multiple_bonds_are_refused():
    """CA with its H and the side chain as QM region: CA–N is polar, CA–C goes to an sp2 carbon."""
    with pytest.raises(ValueError) as err:
        ala2("resname ALA and name CA HA CB HB1 HB2 HB3")
    message = str(err.value)
    assert "2 bond(s) that cannot carry a link atom" in message
    assert re.search(r"CA \(ALA 2, index \d+\) – N \(ALA 2, index \d+\): N \(ALA 2, index \d+\): N is not carbon", message)
    assert re.search(r"– C \(ALA 2, index \d+\): C \(ALA 2, index \d+\): a carbon with 3 bonded neighbours", message)


def test_selection_with_non_integer_charge_is_refused(tmp_path):
    """Ethanol with its CH2OH part as QM region (cut C1–C2, both sp3): with the demo's charges the
    part is neutral to 0.01 e and accepted; with 0.5 e moved from C1 to C2 it is refused."""
    keys = dict(force_field=["amber14/tip3p.xml", str(DEMO_FF)], nonbonded_method="pme", link_atoms=True)
    qm = "resname ETH and name C2 O1 HO1 H21 H22"
    accepted = load_system(DEMO, qm, **keys)
    assert accepted.n_link == 1 and abs(accepted.charges_e.sum()) < 1e-9
    shifted = tmp_path / "ethanol_shifted.xml"
    text = Path(DEMO_FF).read_text()
    text = text.replace('name="C1" type="ETH-c3" charge="-0.1361"', 'name="C1" type="ETH-c3" charge="0.3639"')
    text = text.replace('name="C2" type="ETH-c3" charge="0.1264"', 'name="C2" type="ETH-c3" charge="-0.3736"')
    shifted.write_text(text)
    with pytest.raises(ValueError, match=rf"add up to -0.4910 e, 0.491 e from system.qm_charge 0; .* at most {CHARGE_TOLERANCE_E} e"):
        load_system(DEMO, qm, **{**keys, "force_field": ["amber14/tip3p.xml", str(shifted)]})


@pytest.mark.parametrize("name", ["xtb", "xtb_point_charges"])
def test_xtb_potentials_with_link_atoms_give_minus_gradient(system, name):
    """The samplers' potentials on the cut side chain: GFN2-xTB of methane (CB + link H) with fixed
    Mulliken charges in the force field (the link atom's charge on CB), and GFN2-xTB in the
    weighted point charges (xtb program); total forces match central differences."""
    if name == "xtb_point_charges" and shutil.which("xtb") is None:
        pytest.skip("needs the xtb program (apt-get install xtb)")
    calc = build_potential(name, system, embedding=EMBEDDING, mm_platform="Reference")
    if name == "xtb":
        nb = next(f for f in calc.mm.openmm_system.getForces() if isinstance(f, openmm.NonbondedForce))
        q_qm = [nb.getParticleParameters(int(i))[0].value_in_unit(unit.elementary_charge)
                for i in system.original_index[: system.n_qm]]
        assert sum(q_qm) == pytest.approx(0.0, abs=1e-6)  # the QM region's total, link atom's share included
    forces = total_forces(calc, system)
    check = boundary_coordinates(system)
    num = numerical_forces(calc, system, check, h=1e-3)
    np.testing.assert_allclose([forces[a, k] for a, k in check], num, atol=2e-4 if name == "xtb" else 2e-3)


def test_nve_conserves_energy_across_the_link_atom(system):
    """Velocity Verlet (OpenMM) with the xTB/MM QM term on the cut side chain: 200 × 0.25 fs, the
    CA–CB bond and the link atom moving, conserve the total energy (std < 1 % of the potential
    energy's, no drift above 0.5 meV); a force inconsistent with the energy at the boundary fails."""
    from mlmm.dynamics.md import run_md
    from mlmm.sampling.common import xtb_mm_potential

    potential = xtb_mm_potential(system, EMBEDDING)
    e_tot, e_pot, cut = [], [], []
    (link,) = system.links

    def record(step, atoms):
        e_pot.append(atoms.get_potential_energy())
        e_tot.append(e_pot[-1] + atoms.info["kinetic_energy_ev"])
        cut.append(np.linalg.norm(atoms.positions[link.qm] - atoms.positions[link.mm]))

    run = run_md(potential, steps=200, timestep_fs=0.25, temperature_K=300.0, friction_per_fs=0.0, seed=5, on_frame=record)
    assert run.stop_reason is None and run.steps_done == 200
    e_tot, e_pot = np.array(e_tot), np.array(e_pot)
    assert np.ptp(cut) > 0.03  # the cut bond vibrates
    assert e_tot.std() < 0.01 * e_pot.std()
    assert abs(e_tot[-10:].mean() - e_tot[:10].mean()) < 5e-4
