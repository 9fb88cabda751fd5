"""The QM/MM partition of the force field's OpenMM System and the MM term built on it, against
independent OpenMM evaluations, the Lennard-Jones and Coulomb formulas over QM–MM pairs, finite
differences, and the ethanol→water hydrogen bond."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
import pytest

from conftest import DEMO, FORCE_FIELDS, ROOT, embedding_with, load_demo, solute_with_nearest_waters
from mlmm.analysis.hbond import relaxed_water_scan
from mlmm.engines.xtb import XTBTerm, xtb_charges
from mlmm.mm import OpenMMTerm, partition
from mlmm.potentials import QMMMCalculator, build_potential
from mlmm.system import System
from mlmm.units import COULOMB_EV_ANGSTROM, KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM, KJ_PER_MOL_TO_EV

FF = FORCE_FIELDS["ethanol_water.pdb"]


@pytest.fixture(scope="module")
def demo() -> System:
    return load_demo()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> System:
    """Ethanol + its 6 nearest waters, no box (nonbonded method none)."""
    return solute_with_nearest_waters(DEMO, "ETH", 6, tmp_path_factory.mktemp("cluster") / "eth6.pdb", FF)


def evaluate(system: openmm.System, positions_ang: np.ndarray, box_ang: np.ndarray | None = None,
             groups: set[int] | None = None) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Å) of an OpenMM System on the Reference platform (double precision)."""
    context = openmm.Context(system, openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName("Reference"))
    if box_ang is not None:
        context.setPeriodicBoxVectors(*(box_ang * unit.angstrom))
    context.setPositions(positions_ang * unit.angstrom)
    state = context.getState(getEnergy=True, getForces=True, **({} if groups is None else {"groups": groups}))
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * KJ_PER_MOL_TO_EV
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energy, np.asarray(forces) * KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM


def zero_charges(system: openmm.System, atoms: list[int]) -> openmm.System:
    """A copy of ``system`` with the charges of ``atoms`` (and of their exceptions) set to zero."""
    system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    for i in atoms:
        _, sigma, eps = nb.getParticleParameters(i)
        nb.setParticleParameters(i, 0.0, sigma, eps)
    for e in range(nb.getNumExceptions()):
        a, b, _, sigma, eps = nb.getExceptionParameters(e)
        if a in atoms or b in atoms:
            nb.setExceptionParameters(e, a, b, 0.0, sigma, eps)
    return system


def reference_mm(pdb_path: Path, qm_resname: str, method, cutoff_ang: float) -> tuple[openmm.System, openmm.System, list[int]]:
    """Independently of mlmm: (whole system, the QM residue alone), both with the QM charges zeroed,
    from a second ForceField.createSystem; and the QM atoms' file indices. The MM energy of the
    partition is E(whole) - E(QM alone): the QM residue alone holds exactly its internal bonded
    terms and its internal Lennard-Jones (1-4 scaled), all well inside any cutoff."""
    pdb = app.PDBFile(str(pdb_path))
    ff = app.ForceField(*FF)
    whole = ff.createSystem(pdb.topology, nonbondedMethod=method, nonbondedCutoff=cutoff_ang * unit.angstrom,
                            constraints=None, rigidWater=True, ewaldErrorTolerance=1e-4)  # system.nonbonded's default
    qm = [a.index for a in pdb.topology.atoms() if a.residue.name == qm_resname]
    alone = app.Modeller(pdb.topology, pdb.positions)
    alone.delete([r for r in pdb.topology.residues() if r.name != qm_resname])
    alone.topology.setPeriodicBoxVectors(None)
    lone = ff.createSystem(alone.topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=True)
    return zero_charges(whole, qm), zero_charges(lone, list(range(len(qm)))), qm


@pytest.mark.parametrize("which", ["demo", "cluster"])
def test_partition_equals_force_field_without_qm_charges_and_internal_terms(which, demo, cluster):
    """The MM term = a plain OpenMM evaluation of the same force field with the QM charges zeroed
    minus the QM residue's own energy: to 1e-10 on the Reference platform, to 1e-6 relative (1e-5 eV)
    on the mixed-precision CPU platform; PME in the periodic demo box, no cutoff for the cluster."""
    system = demo if which == "demo" else cluster
    method = app.PME if which == "demo" else app.NoCutoff
    whole, lone, qm = reference_mm(Path(system.source), "ETH", method, 9.0)
    assert qm == list(system.original_index[: system.n_qm])
    pos = system.atoms.positions + np.random.default_rng(5).normal(scale=0.02, size=system.atoms.positions.shape)
    file_pos = system.to_file_order(pos)
    e_whole, f_whole = evaluate(whole, file_pos, system.mm.box_vectors_ang)
    e_lone, f_lone = evaluate(lone, file_pos[qm])
    e_ref, f_ref = e_whole - e_lone, f_whole.copy()
    f_ref[qm] -= f_lone
    e_exact, f_exact = OpenMMTerm(system, platform="Reference").energy_forces(pos)
    assert abs(e_lone) > 0.05 and e_exact == pytest.approx(e_ref, rel=1e-10, abs=1e-9)
    np.testing.assert_allclose(system.to_file_order(f_exact), f_ref, rtol=0, atol=1e-9)
    e, f = OpenMMTerm(system).energy_forces(pos)
    assert e == pytest.approx(e_ref, rel=1e-6, abs=1e-5)  # CPU platform: single-precision pair terms
    np.testing.assert_allclose(system.to_file_order(f), f_ref, rtol=0, atol=1e-4 * np.abs(f_ref).max())


def lj_by_atom_name(xml_path: str | Path, resname: str) -> dict[str, tuple[float, float]]:
    """(sigma nm, epsilon kJ/mol) of each atom of residue ``resname``, read from a ForceField XML
    itself (NonbondedForce entries by type or class)."""
    root = ET.parse(xml_path).getroot()
    type_class = {t.get("name"): t.get("class") for t in root.find("AtomTypes")}
    by_key = {a.get("type") or a.get("class"): (float(a.get("sigma")), float(a.get("epsilon")))
              for a in root.find("NonbondedForce").iter("Atom")}
    residue = next(r for r in root.find("Residues") if r.get("name") == resname)
    return {a.get("name"): by_key.get(a.get("type"), by_key.get(type_class[a.get("type")])) for a in residue.iter("Atom")}


def test_energy_decomposition_qm_internal_terms_gone_qm_mm_lennard_jones_kept(cluster):
    """Per force group of the partitioned System: no bonded term and no energy left inside the QM
    region; nonbonded without the MM charges and MM Lennard-Jones = the Lorentz–Berthelot LJ
    sum over QM–MM pairs, computed here from the XML parameters; no QM–QM nonbonded energy."""
    system = cluster
    qm = list(system.original_index[: system.n_qm])
    part = partition(system.mm.system, qm)
    for k, force in enumerate(part.getForces()):
        force.setForceGroup(k)
    bonded = [k for k, f in enumerate(part.getForces()) if isinstance(f, (openmm.HarmonicBondForce, openmm.HarmonicAngleForce,
                                                                            openmm.PeriodicTorsionForce))]
    full_bonded = [f for f in system.mm.system.getForces() if isinstance(f, openmm.HarmonicBondForce)][0]
    assert full_bonded.getNumBonds() == 8 and len(bonded) == 3  # ethanol's 8 bonds in the force field, …
    assert all(getattr(part.getForce(k), n)() == 0 for k in bonded
               for n in ("getNumBonds", "getNumAngles", "getNumTorsions") if hasattr(part.getForce(k), n))  # … none left
    pos = system.to_file_order(system.atoms.positions)
    for k in bonded:
        assert evaluate(part, pos, groups={k})[0] == 0.0
    nb_index = next(k for k, f in enumerate(part.getForces()) if isinstance(f, openmm.NonbondedForce))
    nb = part.getForce(nb_index)
    mm = [i for i in range(part.getNumParticles()) if i not in qm]
    for i in mm:  # MM charges off: what is left is Lennard-Jones (QM charges are zero)
        _, sigma, eps = nb.getParticleParameters(i)
        nb.setParticleParameters(i, 0.0, sigma, eps)
    for e in range(nb.getNumExceptions()):  # all intramolecular: QM–QM (zeroed already) and water
        a, b, _, sigma, _ = nb.getExceptionParameters(e)
        nb.setExceptionParameters(e, a, b, 0.0, sigma, 0.0)
    eth = lj_by_atom_name(ROOT / "data" / "demo" / "ethanol_gaff2.xml", "ETH")
    water = lj_by_atom_name(Path(app.__file__).parent / "data" / "amber14" / "tip3p.xml", "HOH")
    names = list(system.atom_names)
    e_ref = 0.0
    for i in range(system.n_qm):
        s_i, e_i = eth[names[i]]
        for j in range(system.n_qm, len(names)):
            s_j, e_j = water[names[j]]
            r = np.linalg.norm(system.atoms.positions[i] - system.atoms.positions[j]) / 10.0
            sigma, eps = 0.5 * (s_i + s_j), np.sqrt(e_i * e_j)
            e_ref += 4.0 * eps * ((sigma / r) ** 12 - (sigma / r) ** 6)
    e_lj = evaluate(part, pos, groups={nb_index})[0]
    for i in qm:  # QM Lennard-Jones off: MM–MM Lennard-Jones is left, the difference is QM–MM
        nb.setParticleParameters(i, 0.0, 0.1, 0.0)
    e_mm_lj = evaluate(part, pos, groups={nb_index})[0]
    assert abs(e_ref) > 0.01 and e_lj - e_mm_lj == pytest.approx(e_ref * KJ_PER_MOL_TO_EV, rel=1e-9)
    for i in range(part.getNumParticles()):  # QM Lennard-Jones back, MM off: no QM–QM nonbonded energy remains
        nb.setParticleParameters(i, 0.0, *part.getForce(nb_index).getParticleParameters(i)[1:]) if i in qm else \
            nb.setParticleParameters(i, 0.0, 0.1, 0.0)


def test_mechanical_embedding_charges_add_qm_mm_coulomb(cluster):
    """The ``xtb`` potential's MM part carries the fixed QM charges: its difference to the MM part
    without them is Coulomb's law over QM–MM pairs (energy and forces), and QM–QM pairs stay excluded."""
    system = cluster
    q_qm = xtb_charges(system.atoms.get_chemical_symbols()[:9], system.atoms.positions[:9], 0, 1)
    pos = system.atoms.positions
    e_with, f_with = OpenMMTerm(system, qm_charges_e=q_qm, platform="Reference").energy_forces(pos)
    e_without, f_without = OpenMMTerm(system, platform="Reference").energy_forces(pos)
    d = pos[9:][None, :, :] - pos[:9][:, None, :]  # QM -> MM
    r = np.linalg.norm(d, axis=2)
    pair = COULOMB_EV_ANGSTROM * q_qm[:, None] * system.charges_e[9:][None, :] / r
    f_mm = (pair / r**2)[..., None] * d
    assert e_with - e_without == pytest.approx(pair.sum(), rel=1e-6)
    np.testing.assert_allclose((f_with - f_without)[9:], f_mm.sum(axis=0), atol=1e-5)
    np.testing.assert_allclose((f_with - f_without)[:9], -f_mm.sum(axis=1), atol=1e-5)


def test_triclinic_box_pme_partition(tmp_path):
    """PME in a triclinic box: the partition still equals the independent reference."""
    pdb = app.PDBFile(str(DEMO))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.delete([r for r in pdb.topology.residues() if r.name != "ETH"])
    ff = app.ForceField(*FF)
    a = 2.3  # nm: a rhombic dodecahedron, half its height 0.94 nm > the 0.9 nm cutoff
    vectors = (openmm.Vec3(a, 0, 0), openmm.Vec3(a / 3, a * np.sqrt(8) / 3, 0), openmm.Vec3(-a / 3, a * np.sqrt(2) / 3, a * np.sqrt(6) / 3))
    modeller.addSolvent(ff, model="tip3p", boxVectors=vectors * unit.nanometer)
    path = tmp_path / "triclinic.pdb"
    with open(path, "w") as fh:
        app.PDBFile.writeFile(modeller.topology, modeller.positions, fh)
    whole, lone, qm = reference_mm(path, "ETH", app.PME, 9.0)
    top = app.PDBFile(str(path))
    box = np.array([v.value_in_unit(unit.angstrom) for v in top.topology.getPeriodicBoxVectors()])
    assert abs(box[1, 0]) > 1.0  # really triclinic
    pos = np.asarray(top.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
    e_ref = evaluate(whole, pos, box)[0] - evaluate(lone, pos[qm])[0]
    assert evaluate(partition(whole, qm), pos, box)[0] == pytest.approx(e_ref, rel=1e-9)
    assert evaluate(partition(ff.createSystem(top.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                              constraints=None, rigidWater=True, ewaldErrorTolerance=1e-4), qm),
                    pos, box)[0] == pytest.approx(e_ref, rel=1e-9)


def test_qm_water_loses_its_constraints():
    """A QM water is flexible (its QM term moves it); every MM water stays rigid."""
    system = load_demo("resname ETH or (resname HOH and resid 5)")
    part = partition(system.mm.system, system.original_index[: system.n_qm])
    assert system.mm.system.getNumConstraints() == 3 * 209 and part.getNumConstraints() == 3 * 208
    qm = set(system.original_index[: system.n_qm].tolist())
    kept = [part.getConstraintParameters(k)[:2] for k in range(part.getNumConstraints())]
    assert not any(a in qm or b in qm for a, b in kept)


def test_ethanol_donates_a_hydrogen_bond_to_water(tmp_path):
    """xTB/MM (the ``xtb`` potential: fixed GFN2 charges + the force field's Lennard-Jones, GAFF2's
    small hydroxyl-H sphere) on ethanol + one water accepting its hydroxyl H, the water's
    orientation relaxed at each O···O distance: the minimum lies at 2.7–3.0 Å. Generic aliphatic-H
    Lennard-Jones on that H put it at 3.61 Å (DESIGN.md §6)."""
    system = solute_with_nearest_waters(DEMO, "ETH", 1, tmp_path / "eth1.pdb", FF)
    calc = build_potential("xtb", system, embedding=embedding_with(cutoff=20.0))
    term = calc.mm
    r_grid = np.arange(2.5, 3.81, 0.05)
    water = np.arange(9, 12)
    geometries, energies = relaxed_water_scan(lambda p: term.energy_forces(p)[0], system.atoms.positions, 2, 3, water, r_grid)
    k = int(np.argmin(energies))
    binding_kcal = (energies[k] - energies[-1]) / KJ_PER_MOL_TO_EV / 4.184
    assert 2.7 <= r_grid[k] <= 3.0 and binding_kcal < -2.0, (r_grid[k], binding_kcal)
    hb = geometries[k]
    assert np.linalg.norm(hb[9] - hb[2]) == pytest.approx(r_grid[k], abs=1e-9)  # the water O on the O–H axis
    assert np.linalg.norm(hb[9:12] - hb[9], axis=1) == pytest.approx(np.linalg.norm(system.atoms.positions[9:12] - system.atoms.positions[9], axis=1))
    # the full potential: the vacuum QM term does not see the water, so the MM scan is the xTB/MM one
    atoms = system.atoms.copy()
    atoms.calc = calc
    e_qm = atoms.get_potential_energy() - term.energy_forces(atoms.positions)[0]
    atoms.positions = hb
    assert atoms.get_potential_energy() == pytest.approx(e_qm + energies[k], abs=1e-6)


@pytest.mark.parametrize("periodic", [False, True])
def test_qmmm_xtb_forces_finite_differences(demo, cluster, periodic):
    """QMMMCalculator(XTBTerm + OpenMM MM with fixed QM charges) forces = -dE/dR on QM atoms and
    waters, with and without PBC (MM on the double-precision Reference platform)."""
    system = demo if periodic else cluster
    q = xtb_charges(system.atoms.get_chemical_symbols()[:9], system.whole_qm_positions(system.atoms.positions), 0, 1)
    atoms = system.atoms.copy()
    atoms.calc = QMMMCalculator(system, XTBTerm(accuracy=0.01), OpenMMTerm(system, qm_charges_e=q, platform="Reference"),
                                embedding_with(cutoff=8.0))
    f = atoms.get_forces()
    check = [0, 2, 3, 9, 10] if periodic else list(range(9)) + [9, 10, 11, 21]
    h = 1e-3
    num = []
    for i in check:
        for k in range(3):
            e = []
            for sign in (1, -1):
                p = system.atoms.positions.copy()
                p[i, k] += sign * h
                atoms.positions = p
                e.append(atoms.get_potential_energy())
            num.append(-(e[0] - e[1]) / (2 * h))
    np.testing.assert_allclose(f[check].ravel(), num, atol=1e-4)
    assert atoms.calc.results["qm_energy"] < -300 and "sigma_force" not in atoms.calc.results
