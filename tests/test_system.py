"""System loading from the four force-field inputs, QM selection checks, rigid-water constraint and
the cut into Frames."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import openmm
import openmm.unit as unit
import pytest
from ase.geometry import get_distances

from conftest import DEMO, DEMO_FORCE_FIELD, FORCE_FIELDS, ROOT, embedding_with, load_demo, rigid_waters
from mlmm.embedding import frame_weights
from mlmm.frames import validate_frame
from mlmm.mm import OpenMMTerm
from mlmm.system import load_system

INFO = dict(sampler="test", iteration=0, source="test", seed=0)
DATA = ROOT / "tests" / "data"
ETH_XML = ROOT / "data" / "demo" / "ethanol_gaff2.xml"


@pytest.fixture(scope="module")
def demo():
    return load_demo()


def test_demo_box_order_masses_and_charges_from_the_force_field(demo):
    at = demo.atoms
    assert demo.n_qm == 9 and at.get_chemical_symbols()[:9] == ["C", "C", "O"] + ["H"] * 6
    assert at.pbc.all() and np.allclose(at.cell.lengths(), 18.6, atol=1e-6) and demo.mm.nonbonded_method == "pme"
    w, lengths = rigid_waters(demo)
    n_w = len(w)
    assert n_w == 209 and len(at) == 9 + 3 * n_w
    density = at.get_masses().sum() / 6.02214076e23 / (at.get_volume() * 1e-24)
    assert 0.95 < density < 1.02  # g/cm³
    assert np.all(demo.charges_e[:9] == 0) and np.all(demo.molecule_index[:9] == -1)
    assert np.array_equal(w.ravel(), np.arange(9, len(at)))  # contiguous, file order O H1 H2
    assert np.all(at.numbers[w[:, 0]] == 8) and np.all(at.numbers[w[:, 1:]] == 1)
    assert np.allclose(demo.charges_e[w], [-0.834, 0.417, 0.417])  # amber14/tip3p.xml
    assert np.allclose(at.get_masses()[w[0]], [15.99943, 1.007947, 1.007947])  # its masses, not ASE's
    assert np.allclose(at.get_masses()[:3], [12.01, 12.01, 16.0])  # GAFF2 masses of the XML
    # the QM atoms' force-field charges (zeroed in charges_e) are the XML's AM1-BCC charges
    nb = next(f for f in demo.mm.system.getForces() if isinstance(f, openmm.NonbondedForce))
    xml = {a.get("name"): float(a.get("charge")) for a in ET.parse(ETH_XML).getroot().iter("Atom") if a.get("charge")}
    for k in range(9):
        q = nb.getParticleParameters(int(demo.original_index[k]))[0].value_in_unit(unit.elementary_charge)
        assert q == pytest.approx(xml[demo.atom_names[k]], abs=1e-12)
    # rigid water at the force field's geometry (up to the PDB's 0.001 Å), no clash with ethanol
    r1 = np.linalg.norm(at.positions[w[:, 1]] - at.positions[w[:, 0]], axis=1)
    r12 = np.linalg.norm(at.positions[w[:, 2]] - at.positions[w[:, 1]], axis=1)
    assert np.allclose(lengths, [0.9572, 0.9572, 1.51390065], atol=1e-6)
    assert np.allclose(r1, 0.9572, atol=2e-3) and np.allclose(r12, 1.5139, atol=3e-3)
    _, d = get_distances(at.positions[:3], at.positions[w[:, 0]], cell=at.cell, pbc=True)
    assert d.min() >= 2.4


def test_file_order_round_trip():
    """A QM water from the middle of the file moves up next to ethanol; the file-order maps undo it."""
    import MDAnalysis as mda

    system = load_demo("resname ETH or (resname HOH and resid 5)")
    u = mda.Universe(str(DEMO))
    assert system.n_qm == 12 and np.array_equal(system.original_index[:12], np.r_[np.arange(9), 18, 19, 20])
    assert np.allclose(system.atoms.positions[9:12], u.atoms.positions[18:21], atol=1e-5)
    assert np.array_equal(system.original_index[12:15], [9, 10, 11]) and system.molecule_index[12] == 0
    back = system.to_file_order(system.atoms.positions)
    assert np.allclose(back, u.atoms.positions, atol=1e-5)
    assert np.array_equal(system.from_file_order(back), system.atoms.positions)
    assert [s for s in system.to_file_order(np.array(system.atoms.get_chemical_symbols()))] == \
        [e.capitalize() for e in u.atoms.elements]


def _check_cut(system, positions, frame, index, embedding):
    cutoff = embedding.cutoff
    validate_frame(frame)
    n_qm = system.n_qm
    # whole molecules only, integer (here zero) charge, QM first
    mols = frame.arrays["mm_molecule"][n_qm:]
    for m in np.unique(mols):
        assert np.sum(mols == m) == np.sum(system.molecule_index == m)
    assert abs(frame.get_initial_charges().sum() - round(frame.get_initial_charges().sum())) < 1e-9
    # exactly the molecules with an atom within the cutoff (brute force, minimum image), i.e. those
    # the embedding weights > 0; some of them switched (0 < w < 1), as every consumer sees them
    _, d = get_distances(positions[n_qm:], positions[:n_qm], cell=system.atoms.cell, pbc=system.atoms.pbc)
    atom_min = d.min(axis=1)
    mol = system.molecule_index[n_qm:]
    expected = {m for m in range(mol.max() + 1) if atom_min[mol == m].min() < cutoff}
    assert set(mols.tolist()) == expected
    w = frame_weights(frame)[n_qm:]
    assert np.all(w > 0) and np.any(w < 1) and np.any(w == 1)
    assert frame.info["embedding_cutoff"] == cutoff and frame.info["embedding_switch_width"] == embedding.switch_width
    # molecules kept whole and at the image that realises their closest distance
    fp = frame.positions
    for m in expected:
        sel = np.flatnonzero(frame.arrays["mm_molecule"] == m)
        dm = np.linalg.norm(fp[sel][:, None] - fp[None, :n_qm], axis=2).min()
        assert dm == pytest.approx(atom_min[mol == m].min(), abs=1e-9)
        _, intra = get_distances(positions[index[sel]], cell=system.atoms.cell, pbc=system.atoms.pbc)
        assert np.allclose(np.linalg.norm(fp[sel][:, None] - fp[sel][None], axis=2), intra, atol=1e-9)


def test_cut_frame_whole_molecules(demo):
    pos = demo.atoms.positions
    embedding = embedding_with(cutoff=6.0, switch_width=1.5)
    frame, index = demo.cut_frame(pos, embedding, **INFO)
    assert np.array_equal(index[:9], np.arange(9)) and len(frame) == len(index)
    assert np.array_equal(frame.get_initial_charges(), demo.charges_e[index])  # raw charges; weights apart
    assert 20 < (len(frame) - 9) // 3 < 80
    _check_cut(demo, pos, frame, index, embedding)


def test_cut_frame_across_box_face(demo):
    """Translating everything so the QM region straddles a box corner, and wrapping every atom
    into the box (splitting molecules), gives the same frame up to a rigid translation."""
    pos = demo.atoms.positions
    embedding = embedding_with(cutoff=7.0)
    ref, ref_index = demo.cut_frame(pos, embedding, **INFO)
    box = demo.box_ang
    shift = -pos[1] + np.array([0.1, box[1] - 0.2, 0.3])  # C2 of ethanol at a corner
    moved = pos + shift
    wrapped = moved - box * np.floor(moved / box)
    assert np.ptp(wrapped[:9], axis=0).max() > 10.0  # QM region really split by the wrap
    frame, index = demo.cut_frame(wrapped, embedding, **INFO)
    assert np.array_equal(index, ref_index)
    delta = frame.positions - ref.positions
    assert np.allclose(delta, delta[0], atol=1e-9)
    _check_cut(demo, wrapped, frame, index, embedding)
    assert frame.info["box_cell"] == pytest.approx(np.diag(box).ravel().tolist())


def test_cut_residue_and_mm_charges_from_the_force_field():
    # whole ethanol in MM gets its force-field charges; QM = one water
    system = load_demo("resname HOH and resid 2")
    eth_idx = np.flatnonzero(system.resnames == "ETH")
    assert system.charges_e[eth_idx].sum() == pytest.approx(0.0, abs=1e-5) and system.charges_e[eth_idx].std() > 0.1
    assert system.n_qm == 3 and system.atoms.get_chemical_symbols()[:3] == ["O", "H", "H"]
    # cutting ethanol through its C–O bond (QM part 0.2038 e): the cut bond is named first
    with pytest.raises(ValueError, match=r"'resname ETH and not name O1 HO1' cuts 1 covalent bond.*C2 \(ETH 1, index 1\) – "
                                         r"O1 \(ETH 1, index 2\)") as err:
        load_demo("resname ETH and not name O1 HO1")
    assert str(DEMO) in str(err.value)
    # and with link atoms the cut through a polar bond is refused, naming why
    with pytest.raises(ValueError, match=r"C2 \(ETH 1, index 1\) – O1 \(ETH 1, index 2\): O1 \(ETH 1, index 2\): O is not carbon"):
        load_system(DEMO, "resname ETH and not name O1 HO1", force_field=DEMO_FORCE_FIELD, link_atoms=True)
    # parts of two waters add up to an integer QM charge, but cut their O–H bonds
    with pytest.raises(ValueError, match=r"cuts 4 covalent bond"):
        load_demo("(resname HOH and resid 2 and name O) or (resname HOH and resid 3 and name H1 H2)")


def test_selection_cutting_a_bond_at_integer_charges_is_refused():
    """Capped alanine (ACE-ALA-NME, amber14): each residue has integer charge, so a QM region of ALA
    alone passes the charge checks, but it cuts the peptide bonds of the topology: refused, named."""
    pdb = DATA / "ala2.pdb"
    with pytest.raises(ValueError, match=r"cuts 2 covalent bond.*C \(ACE 1, index 4\) – N \(ALA 2, index 6\)|"
                                         r"cuts 2 covalent bond.*N \(ALA 2, index 6\) – C \(ACE 1, index 4\)") as err:
        load_system(pdb, "resname ALA", force_field=["amber14-all.xml"])
    assert str(pdb) in str(err.value) and "NME 3" in str(err.value)
    assert load_system(pdb, "all", force_field=["amber14-all.xml"]).n_qm == 22


@pytest.mark.parametrize("path", sorted((ROOT / "data").glob("*/*.pdb")), ids=lambda p: p.name)
def test_bundled_systems_load_with_their_force_fields(path):
    selection = {"ethanol_water.pdb": "resname ETH", "butadiene_water.pdb": "resname BUT",
                 "at_pair_water.pdb": "resname ADN THM", "ethanol_nacl_water.pdb": "resname ETH",
                 "chignolin_water.pdb": "resname TRP and resid 9 and not backbone and not name H HA"}[path.name]
    ff = FORCE_FIELDS.get(path.name, FORCE_FIELDS["ethanol_water.pdb"])
    system = load_system(path, selection, force_field=ff, link_atoms=path.name == "chignolin_water.pdb")
    assert system.n_qm > 0 and system.atoms.pbc.all() and abs(system.charges_e.sum()) < 1e-4
    if path.name == "ethanol_nacl_water.pdb":
        ions = {r: system.charges_e[system.resnames == r].tolist() for r in ("NA", "CL")}
        assert ions == {"NA": [1.0], "CL": [-1.0]}


@pytest.mark.parametrize(
    ("selection", "qm_charge", "message"),
    [
        ("resname XYZ", 0, "selects no atoms"),
        ("resname ETH and", 0, "invalid QM selection"),
        ("resname ETH or (resname HOH and resid 2 and name O)", 0, r"cuts 2 covalent bond.*O \(HOH 2, index 9\) – H1 \(HOH 2, index 10\)"),
        ("resname HOH and resid 2", 1, "has force-field charge 0 e, but system.qm_charge is 1"),
    ],
)
def test_selection_errors_name_the_problem(selection, qm_charge, message):
    with pytest.raises(ValueError, match=message) as err:
        load_demo(selection, qm_charge=qm_charge)
    assert str(DEMO) in str(err.value)


#: The same tiny box (ethanol + 46 waters, 12.4 Å) in the four force-field inputs (tools/build_test_systems.py):
#: PDB + ForceField XML, and tleap's Amber files, ParmEd's CHARMM and GROMACS conversions of them.
INPUT_KINDS = {
    "force_field": dict(structure=DATA / "eth_box.pdb", force_field=["amber14/tip3p.xml", str(ETH_XML)]),
    "amber": dict(structure=DATA / "eth_box.inpcrd", topology=DATA / "eth_box.prmtop"),
    "charmm": dict(structure=DATA / "eth_box.pdb", topology=DATA / "eth_box.psf", parameters=[str(DATA / "eth_box.prm")]),
    "gromacs": dict(structure=DATA / "eth_box.gro", topology=DATA / "eth_box.top", gromacs_include=str(DATA / "gromacs_include")),
}


def load_kind(kind: str, **kwargs):
    files = dict(INPUT_KINDS[kind])
    return load_system(files.pop("structure"), "resname ETH", nonbonded_method="pme", nonbonded_cutoff_ang=6.0, **files, **kwargs)


@pytest.fixture(scope="module")
def kinds():
    return {kind: load_kind(kind) for kind in INPUT_KINDS}


@pytest.mark.parametrize("kind", ["amber", "charmm", "gromacs"])
def test_the_four_input_kinds_give_the_same_system(kinds, kind):
    """prmtop, psf + prm and top + gro give the atoms, box, charges, masses, rigid waters and QM/MM
    partitioned MM energy and forces of PDB + XML (the CHARMM conversion's 1-4 electrostatics differ,
    but only inside ethanol, which is QM: removed). Evaluated at the same positions (the gro file
    has 0.01 Å precision; tleap moved the box by half its edge)."""
    ref, other = kinds["force_field"], kinds[kind]
    assert list(other.atom_names) == list(ref.atom_names) and other.atoms.get_chemical_symbols() == ref.atoms.get_chemical_symbols()
    shift = other.atoms.positions - ref.atoms.positions
    assert np.abs(shift - shift.mean(axis=0)).max() < (6e-3 if kind == "gromacs" else 1e-5)
    assert np.allclose(other.atoms.cell.array, ref.atoms.cell.array)
    np.testing.assert_allclose(other.charges_e, ref.charges_e, atol=1e-6)
    np.testing.assert_allclose(other.atoms.get_masses(), ref.atoms.get_masses(), atol=1e-3)  # Amber O 16.00, OpenMM 15.99943
    (w_other, l_other), (w_ref, l_ref) = rigid_waters(other), rigid_waters(ref)
    assert np.array_equal(w_other, w_ref) and len(w_ref) == 46
    np.testing.assert_allclose(l_other, l_ref, atol=5e-4)  # tleap's H–H 1.5136 Å
    e_ref, f_ref = OpenMMTerm(ref, platform="Reference").energy_forces(ref.atoms.positions)
    e, f = OpenMMTerm(other, platform="Reference").energy_forces(ref.atoms.positions)
    assert e == pytest.approx(e_ref, rel=1e-7)
    np.testing.assert_allclose(f, f_ref, atol=1e-5 * np.abs(f_ref).max())


def test_dispersion_correction_is_the_same_setting_for_every_reader(kinds):
    """OpenMM's CHARMM reader leaves the long-range LJ correction off, the others on: mlmm sets it
    from system.nonbonded.dispersion_correction for all; off, the energy rises by its value."""
    for system in kinds.values():
        nb = next(f for f in system.mm.system.getForces() if isinstance(f, openmm.NonbondedForce))
        assert nb.getUseDispersionCorrection()
    ref = kinds["force_field"]
    off = load_kind("force_field", dispersion_correction=False)
    e_on = OpenMMTerm(ref, platform="Reference").energy_forces(ref.atoms.positions)[0]
    e_off = OpenMMTerm(off, platform="Reference").energy_forces(ref.atoms.positions)[0]
    assert -1.0 < e_on - e_off < -0.05  # attractive tail of 147 atoms beyond 6 Å in 1.9 nm³


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (dict(structure=DEMO), r"no force field; supported inputs: PDB/PDBx \+ system.force_field .*\.prmtop \(amber\), "
                               r"\.parm7 \(amber\), \.psf \(charmm\), \.top \(gromacs\)"),
        (dict(structure=DEMO, topology=DATA / "eth_box.pdb"), r"system.topology .*eth_box.pdb: unsupported file type '\.pdb'; supported"),
        (dict(structure=DEMO, topology=DATA / "eth_box.prmtop", force_field=["amber14/tip3p.xml"]), "either topology .* or force_field"),
        (dict(structure=DATA / "eth_box.gro", force_field=["amber14/tip3p.xml"]), r"with system.force_field the structure must be PDB or PDBx"),
        (dict(structure=DEMO, force_field=["amber14/tip3p.xml"]),
         r"ethanol_water.pdb with force field \['amber14/tip3p.xml'\]: the force field does not describe the structure: "
         r"ValueError: No template found for residue 0 \(ETH\)"),
        (dict(structure=DEMO, force_field=["amber14/tip3p.xml", "no_such_ligand.xml"]), r"system.force_field .*no_such_ligand.xml.*cannot load"),
        (dict(structure=DATA / "eth_box.pdb", topology=DATA / "eth_box.psf"), "a CHARMM psf needs system.parameters"),
        (dict(structure=DATA / "eth_box.gro", topology=DATA / "eth_box.top"),
         r"eth_box.top: cannot read the topology: .*tip3p_water.itp.* \(system.gromacs_include: /usr/local/gromacs/share/gromacs/top\)"),
        (dict(structure=DEMO, topology=DATA / "eth_box.prmtop"), r"ethanol_water.pdb: 636 atoms, but system.topology .*eth_box.prmtop has 147"),
    ],
    ids=["no force field", "unknown topology type", "both", "gro with XML", "missing template", "missing XML",
         "psf without parameters", "missing include", "atom count"],
)
def test_bad_force_field_inputs_are_one_clear_error(files, message):
    files = dict(files)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_system(files.pop("structure"), "resname ETH", **files)


def test_missing_charmm_parameters_name_the_atom_types(tmp_path):
    """A CHARMM parameter file without the ethanol's C–O bond: the error names the file and the types."""
    prm = tmp_path / "incomplete.prm"
    prm.write_text("".join(line for line in (DATA / "eth_box.prm").read_text().splitlines(keepends=True)
                           if not line.startswith("C3LTU  OHLTU")))
    with pytest.raises(ValueError, match=r"eth_box.psf and parameters .*incomplete.prm.*(C3LTU|OHLTU)"):
        load_system(DATA / "eth_box.pdb", "resname ETH", topology=DATA / "eth_box.psf", parameters=[str(prm)],
                    nonbonded_cutoff_ang=6.0)


def test_nonbonded_method_must_fit_the_box():
    with pytest.raises(ValueError, match="method pme needs a periodic box"):
        load_system(DATA / "ala2.pdb", "resname ALA ACE NME", force_field=["amber14-all.xml"], nonbonded_method="pme")
    with pytest.raises(ValueError, match="method none is for clusters"):
        load_demo(nonbonded_method="none")
    with pytest.raises(ValueError, match=r"system.nonbonded.cutoff 9.5 Å exceeds half the box width \(9.30 Å\)"):
        load_demo(nonbonded_cutoff_ang=9.5)
    cluster = load_system(DATA / "ala2.pdb", "resname ALA ACE NME", force_field=["amber14-all.xml"], nonbonded_method="cutoff")
    nb = next(f for f in cluster.mm.system.getForces() if isinstance(f, openmm.NonbondedForce))
    assert nb.getNonbondedMethod() == openmm.NonbondedForce.CutoffNonPeriodic and cluster.mm.nonbonded_method == "cutoff"
