"""System loading, QM selection checks, rigid-water constraint and the cut into Frames."""

from __future__ import annotations

import warnings
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import pytest
from ase.constraints import FixBondLengths
from ase.geometry import get_distances

from mlmm.embedding import frame_weights
from mlmm.frames import validate_frame
from mlmm.system import TIP3P_HOH_DEG, TIP3P_ROH_ANG, RigidWaterConstraint, load_system
from conftest import embedding_with

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "ethanol_water.pdb"
INFO = dict(sampler="test", iteration=0, source="test", seed=0)


@pytest.fixture(scope="module")
def demo():
    return load_system(DEMO, "resname ETH")


def test_demo_box_and_order(demo):
    at = demo.atoms
    assert demo.n_qm == 9 and at.get_chemical_symbols()[:9] == ["C", "C", "O"] + ["H"] * 6
    assert at.pbc.all() and np.allclose(at.cell.lengths(), 18.6, atol=1e-4)
    n_w = len(demo.water_molecules)
    assert 190 <= n_w <= 220 and len(at) == 9 + 3 * n_w
    density = at.get_masses().sum() / 6.02214076e23 / (at.get_volume() * 1e-24)
    assert 0.95 < density < 1.02  # g/cm³
    assert np.all(demo.charges_e[:9] == 0) and np.all(demo.molecule_index[:9] == -1)
    w = np.asarray(demo.water_molecules)
    assert np.array_equal(w.ravel(), np.arange(9, len(at)))  # contiguous, O H H
    assert np.all(at.numbers[w[:, 0]] == 8) and np.all(at.numbers[w[:, 1:]] == 1)
    assert np.allclose(demo.charges_e[w], [-0.834, 0.417, 0.417])
    # exact TIP3P geometry up to the PDB's 0.001 Å precision, no clash with ethanol
    r1 = np.linalg.norm(at.positions[w[:, 1]] - at.positions[w[:, 0]], axis=1)
    r12 = np.linalg.norm(at.positions[w[:, 2]] - at.positions[w[:, 1]], axis=1)
    assert np.allclose(r1, TIP3P_ROH_ANG, atol=2e-3)
    assert np.allclose(r12, 2 * TIP3P_ROH_ANG * np.sin(np.radians(TIP3P_HOH_DEG / 2)), atol=3e-3)
    _, d = get_distances(at.positions[:3], at.positions[w[:, 0]], cell=at.cell, pbc=True)
    assert d.min() >= 2.4


def test_input_order_round_trip():
    """A QM water from the middle of the file moves up next to ethanol; to_input_order undoes it."""
    system = load_system(DEMO, "resname ETH or (resname HOH and resid 5)")
    u = mda.Universe(str(DEMO))
    assert system.n_qm == 12 and np.array_equal(system.original_index[:12], np.r_[np.arange(9), 18, 19, 20])
    assert np.allclose(system.atoms.positions[9:12], u.atoms.positions[18:21])
    assert np.array_equal(system.original_index[12:15], [9, 10, 11]) and system.molecule_index[12] == 0
    back = system.to_input_order(system.atoms)
    assert np.allclose(back.positions, u.atoms.positions)
    assert back.get_chemical_symbols() == [e.capitalize() for e in u.atoms.elements]


def test_qm_lj_defaults(demo):
    sigma, eps = demo.qm_lj_params
    assert sigma.shape == (9,) and np.all(sigma > 2.0) and np.all(eps > 0)
    o = demo.water_molecules[0][0]
    assert demo.lj_sigma_ang[o] == pytest.approx(3.15061) and demo.lj_epsilon_ev[o] == pytest.approx(0.1521 * 0.0433641, rel=1e-4)
    assert demo.lj_epsilon_ev[o + 1] == 0.0


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


def _write_pqr(path: Path, names_charges: dict[str, float]) -> None:
    """ETH + the first five waters of the demo as a PQR (a structure that carries charges)."""
    u = mda.Universe(str(DEMO))
    sel = u.select_atoms("resname ETH or (resname HOH and resid 2:6)")
    charges = [names_charges.get(a.name, {"O": -0.834, "H1": 0.417, "H2": 0.417}.get(a.name, 0.0)) for a in sel]
    sel.universe.add_TopologyAttr("charges", np.zeros(len(u.atoms)))
    sel.universe.add_TopologyAttr("radii", np.ones(len(u.atoms)))
    sel.charges = charges
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel.write(str(path))


def test_topology_charges_and_cut_residue(tmp_path):
    eth = {"C1": -0.18, "C2": 0.14, "O1": -0.68, "HO1": 0.42, "H21": 0.03, "H22": 0.03, "H11": 0.08, "H12": 0.08, "H13": 0.08}
    pqr = tmp_path / "eth.pqr"
    _write_pqr(pqr, eth)
    # whole ethanol in MM is fine with topology charges; QM = one water
    system = load_system(pqr, "resname HOH and resid 2", topology=pqr)
    eth_idx = np.flatnonzero(system.resnames == "ETH")
    assert system.charges_e[eth_idx].sum() == pytest.approx(0.0, abs=1e-6)
    assert system.n_qm == 3 and system.atoms.get_chemical_symbols()[:3] == ["O", "H", "H"]
    # cutting ethanol through its C–O bond leaves a fragment of charge -0.26 e
    with pytest.raises(ValueError, match=r"cuts residue ETH 1.*non-integer charge -0\.26"):
        load_system(pqr, "resname ETH and not name O1 HO1", topology=pqr)


def test_selection_cutting_a_bond_at_integer_charges_is_refused(tmp_path):
    # the demo's ethanol split into two neutral residues, CH3 (ETH 1) and CH2OH (ETO 7), bonded C1–C2:
    # a whole residue out of a chain leaves integer charges but a dangling bond
    eth = {"C1": -0.24, "H11": 0.08, "H12": 0.08, "H13": 0.08, "C2": 0.14, "H21": 0.03, "H22": 0.03, "O1": -0.62, "HO1": 0.42}
    pqr = tmp_path / "split.pqr"
    _write_pqr(pqr, eth)
    methyl, rest, other = [], [], []
    for line in pqr.read_text().splitlines(keepends=True):
        name = line.split()[2] if line.startswith("ATOM") else None
        if name in ("C1", "H11", "H12", "H13"):
            methyl.append(line)
        elif name in ("C2", "H21", "H22", "O1", "HO1"):
            rest.append(line.replace(" ETH ", " ETO ").replace("    1    ", "    7    ", 1))
        else:
            other.append(line)
    pqr.write_text("".join(other[:3] + methyl + rest + other[3:]))  # residues contiguous: ETH 1, ETO 7, waters
    u = mda.Universe(str(pqr))
    assert [(r.resname, r.resid, r.atoms.n_atoms) for r in u.residues[:2]] == [("ETH", 1, 4), ("ETO", 7, 5)]
    with pytest.raises(ValueError, match=r"cuts 1 covalent bond.*guessed from distances.*"
                                         r"C2 \(ETO 7, index 4\) – C1 \(ETH 1, index 0\)") as err:
        load_system(pqr, "resname ETO", topology=pqr)
    assert str(pqr) in str(err.value)
    # both halves together are one whole molecule: no cut bond; a water as QM region cuts nothing either
    assert load_system(pqr, "resname ETH ETO", topology=pqr).n_qm == 9
    assert load_system(pqr, "resname HOH and resid 2", topology=pqr).n_qm == 3


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parents[1] / "data").glob("*/*.pdb")), ids=lambda p: p.name
)
def test_bundled_systems_cut_no_bond(path):
    selection = {"ethanol_water.pdb": "resname ETH", "butadiene_water.pdb": "resname BUT",
                 "at_pair_water.pdb": "resname ADE THY"}[path.name]
    assert load_system(path, selection).n_qm > 0


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ("resname XYZ", "selects no atoms"),
        ("resname ETH and", "invalid QM selection"),
        ("resname ETH or (resname HOH and resid 2 and name O)", "cuts through water residue HOH 2"),
        ("resname HOH and resid 2", "no MM charges for residue ETH 1"),
    ],
)
def test_selection_errors_name_the_problem(selection, message):
    with pytest.raises(ValueError, match=message) as err:
        load_system(DEMO, selection)
    assert str(DEMO) in str(err.value)


def test_water_constraint_matches_ase_and_slices(demo):
    atoms = demo.atoms.copy()
    con = RigidWaterConstraint(np.asarray(demo.water_molecules[:20]))  # ASE's loop is slow: 20 waters
    ref = FixBondLengths(con.pairs)
    rng = np.random.default_rng(3)
    new = atoms.positions + rng.normal(0, 0.02, atoms.positions.shape)
    mine, theirs = new.copy(), new.copy()
    con.adjust_positions(atoms, mine)
    ref.adjust_positions(atoms, theirs)
    assert np.allclose(mine, theirs, atol=1e-10)
    p = rng.normal(size=atoms.positions.shape)
    pm, pr = p.copy(), p.copy()
    con.adjust_momenta(atoms, pm)
    ref.adjust_momenta(atoms, pr)
    assert np.allclose(pm, pr, atol=1e-10)
    atoms.set_constraint(demo.water_constraints())
    part = atoms[: 9 + 7]  # two whole waters and a lone O
    assert len(part.constraints) == 1 and len(part.constraints[0].pairs) == 6
