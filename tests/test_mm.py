"""MM force field and QM/MM calculator: forces = -dE/dR, switching continuity, TIP3P references."""

from __future__ import annotations

import warnings
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.tip3p import TIP3P
from ase.optimize import BFGS

from conftest import embedding_with
from mlmm.engines.xtb import XTBTerm, xtb_charges
from mlmm.mm import MMForceField
from mlmm.potentials import QMMMCalculator
from mlmm.system import TIP3P_HOH_DEG, TIP3P_ROH_ANG, System, load_system
from mlmm.units import COULOMB_EV_ANGSTROM, KCAL_PER_MOL_TO_EV

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "ethanol_water.pdb"


@pytest.fixture(scope="module")
def demo() -> System:
    return load_system(DEMO, "resname ETH")


@pytest.fixture(scope="module")
def qm_charges(demo) -> np.ndarray:
    return xtb_charges(demo.atoms.get_chemical_symbols()[:9], demo.whole_qm_positions(demo.atoms.positions), 0, 1)


class MMOnly(Calculator):
    """ASE calculator of the MM force field alone (for pure-water checks)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, ff: MMForceField) -> None:
        super().__init__()
        self.ff = ff

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        e, f = self.ff.energy_forces(self.atoms.positions)
        self.results = {"energy": e, "forces": f}


def write_pdb(path: Path, positions: np.ndarray, resnames: list[str], names: list[str], elements: list[str],
              resindex: np.ndarray, box: float | None = None) -> Path:
    """Write a PDB via MDAnalysis (no box -> MDAnalysis' CRYST1 1 1 1 placeholder)."""
    n_res = int(resindex.max()) + 1
    u = mda.Universe.empty(len(positions), n_residues=n_res, atom_resindex=resindex, trajectory=True)
    u.add_TopologyAttr("name", names)
    u.add_TopologyAttr("element", elements)
    u.add_TopologyAttr("resname", resnames)
    u.add_TopologyAttr("resid", np.arange(1, n_res + 1))
    u.atoms.positions = positions
    if box is not None:
        u.dimensions = [box, box, box, 90.0, 90.0, 90.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.atoms.write(str(path))
    return path


def cluster(tmp_path: Path, demo: System, n_waters: int) -> System:
    """Ethanol + its ``n_waters`` nearest waters from the demo, as a non-periodic PDB."""
    frame, index = demo.cut_frame(demo.atoms.positions, embedding_with(cutoff=9.0), sampler="t", iteration=0,
                                  source="t", seed=0)
    o = np.flatnonzero(frame.numbers[9:] == 8) + 9
    d = np.linalg.norm(frame.positions[o][:, None] - frame.positions[None, :9], axis=2).min(axis=1)
    keep = np.r_[np.arange(9), (o[np.argsort(d)[:n_waters]][:, None] + np.arange(3)).ravel()]
    names = list(demo.atom_names[index[keep]])
    path = write_pdb(tmp_path / "cluster.pdb", frame.positions[keep], ["ETH"] + ["HOH"] * n_waters, names,
                     [frame.get_chemical_symbols()[k] for k in keep],
                     np.r_[np.zeros(9, int), np.repeat(np.arange(1, n_waters + 1), 3)])
    system = load_system(path, "resname ETH")
    assert not system.atoms.pbc.any()
    return system


def numerical_forces(energy, positions: np.ndarray, atoms_idx, h: float = 1e-4) -> np.ndarray:
    """Central finite differences -dE/dx for the listed atoms (eV/Å)."""
    out = np.zeros((len(atoms_idx), 3))
    for n, i in enumerate(atoms_idx):
        for k in range(3):
            p = positions.copy()
            p[i, k] += h
            ep = energy(p)
            p[i, k] -= 2 * h
            out[n, k] = -(ep - energy(p)) / (2 * h)
    return out


def test_water_water_equals_ase_tip3p(demo):
    """Our vectorised TIP3P equals ASE's TIP3P (same switch) on the periodic demo waters."""
    ff = MMForceField(demo, cutoff_ang=9.0, switch_width_ang=1.0)
    ff.qm_site_eps[:] = 0.0  # QM–MM LJ off: water–water only
    e, f = ff.energy_forces(demo.atoms.positions)
    water = demo.atoms[9:].copy()
    water.calc = TIP3P(rc=9.0, width=1.0)
    assert e == pytest.approx(water.get_potential_energy(), abs=1e-9)
    assert np.allclose(f[9:], water.get_forces(), atol=1e-9)
    assert np.all(f[:9] == 0)


def test_verlet_pair_list_matches_fresh_neighbour_search(demo):
    """Reused pairs (skin 1 Å) give the same energy and forces as a search every step, through
    moves that bring new pairs inside the cutoff (fails if the list is not rebuilt in time)."""
    reused = MMForceField(demo, cutoff_ang=9.0, pair_skin_ang=1.0)
    fresh = MMForceField(demo, cutoff_ang=9.0, pair_skin_ang=0.0)
    rng = np.random.default_rng(4)
    pos = demo.atoms.positions.copy()
    drift = rng.normal(0.0, 1.0, (len(pos), 3))
    drift[demo.water_molecules] = drift[demo.water_molecules][:, :1]  # rigid translation per water
    for step in range(12):
        pos = pos + 0.08 * drift
        e_reused, f_reused = reused.energy_forces(pos)
        e_fresh, f_fresh = fresh.energy_forces(pos)
        assert e_reused == pytest.approx(e_fresh, rel=1e-12, abs=1e-9), step
        assert np.allclose(f_reused, f_fresh, rtol=1e-10, atol=1e-9)
    assert 1 < reused.pair_list.n_builds < fresh.pair_list.n_builds == 12


def test_mm_forces_finite_differences_pbc(demo, qm_charges):
    """F = -dE/dR for TIP3P + QM–MM LJ + fixed-charge Coulomb in the periodic box, including
    atoms inside the switching shells (QM–O and O–O distances in [cutoff - width, cutoff])."""
    rc, width = 8.0, 1.5
    ff = MMForceField(demo, cutoff_ang=rc, switch_width_ang=width, qm_charges_e=qm_charges)
    pos = demo.atoms.positions
    box = demo.box_ang
    o = np.asarray(demo.water_molecules)[:, 0]
    d_qm = np.linalg.norm((pos[o][:, None] - pos[None, :9]) - box * np.round((pos[o][:, None] - pos[None, :9]) / box), axis=2)
    in_shell = o[np.any((d_qm > rc - width) & (d_qm < rc), axis=1)]
    d_oo = pos[o][:, None] - pos[o][None]
    d_oo = np.linalg.norm(d_oo - box * np.round(d_oo / box), axis=2)
    assert in_shell.size and np.any((d_oo > rc - width) & (d_oo < rc))
    check = np.r_[np.arange(9), in_shell[0], in_shell[0] + 1, o[0] + 2, o[-1]]
    e, f = ff.energy_forces(pos)
    num = numerical_forces(lambda p: ff.energy_forces(p)[0], pos, check)
    assert np.allclose(f[check], num, atol=2e-5)
    assert np.abs(f.sum(axis=0)).max() < 1e-9  # Newton's third law


def test_qm_mm_switch_is_continuous(tmp_path, demo, qm_charges):
    """Pull one water radially away from ethanol through the switching shell: E is continuous
    (|ΔE| bounded by max|F|·Δs), its slope matches the forces, and E vanishes beyond the cutoff."""
    system = cluster(tmp_path, demo, 1)
    rc, width = 6.0, 1.0
    ff = MMForceField(system, cutoff_ang=rc, switch_width_ang=width, qm_charges_e=qm_charges)
    pos0 = system.atoms.positions.copy()
    qm_center = pos0[:9].mean(axis=0)
    u = pos0[9] - qm_center
    u /= np.linalg.norm(u)
    start = np.linalg.norm(pos0[9] - pos0[:9], axis=1).min()
    s_values = np.linspace(rc - width - 0.5 - start, rc + 3.0 - start, 1200)
    energies, slopes = [], []
    for s in s_values:
        p = pos0.copy()
        p[9:] += s * u
        e, f = ff.energy_forces(p)
        energies.append(e)
        slopes.append(-f[9:].sum(axis=0) @ u)  # dE/ds for a rigid translation of the water
    energies, slopes = np.array(energies), np.array(slopes)
    ds = s_values[1] - s_values[0]
    assert np.all(np.abs(np.diff(energies)) <= np.maximum(np.abs(slopes[1:]), np.abs(slopes[:-1])) * ds * 1.05 + 1e-12)
    # central differences are O(ds²) except where the C¹ switch has a jump in curvature (O(ds))
    assert np.allclose(np.gradient(energies, ds)[1:-1], slopes[1:-1], atol=2e-3 * np.abs(slopes).max())
    assert energies[-1] == 0.0 and abs(energies[0]) > 1e-4


def test_tip3p_dimer_minimum(tmp_path):
    """Rigid TIP3P dimer minimum: -6.50 kcal/mol at R_OO = 2.75 Å (Jorgensen et al., J. Chem.
    Phys. 79, 926 (1983)); also checks one geometry against a hand-written TIP3P sum."""
    half = np.radians(TIP3P_HOH_DEG) / 2
    w = np.array([[0, 0, 0], [TIP3P_ROH_ANG * np.sin(half), TIP3P_ROH_ANG * np.cos(half), 0],
                  [-TIP3P_ROH_ANG * np.sin(half), TIP3P_ROH_ANG * np.cos(half), 0]])
    # donor O–H1 along +z towards the acceptor O at 2.9 Å; acceptor H's pointing away from it
    donor = np.array([[0, 0, 0], [0, 0, TIP3P_ROH_ANG],
                      [TIP3P_ROH_ANG * np.sin(2 * half), 0, TIP3P_ROH_ANG * np.cos(2 * half)]])
    acceptor = np.array([[0, 0, 2.9], [0, TIP3P_ROH_ANG * np.sin(half), 2.9 + TIP3P_ROH_ANG * np.cos(half)],
                         [0, -TIP3P_ROH_ANG * np.sin(half), 2.9 + TIP3P_ROH_ANG * np.cos(half)]])
    far = w + 100.0  # the required QM residue, far beyond every cutoff
    path = write_pdb(tmp_path / "dimer.pdb", np.vstack([far, donor, acceptor]), ["QMW", "HOH", "HOH"],
                     ["O", "H1", "H2"] * 3, ["O", "H", "H"] * 3, np.repeat(np.arange(3), 3))
    system = load_system(path, "resname QMW")
    ff = MMForceField(system, cutoff_ang=9.0)
    pos = system.atoms.positions
    q = np.array([-0.834, 0.417, 0.417])
    rij = np.linalg.norm(pos[3:6][:, None] - pos[6:9][None], axis=2)
    e_ref = COULOMB_EV_ANGSTROM * np.sum(q[:, None] * q[None] / rij)
    e_ref += 4 * 0.1521 * KCAL_PER_MOL_TO_EV * ((3.15061 / rij[0, 0]) ** 12 - (3.15061 / rij[0, 0]) ** 6)
    assert ff.energy_forces(pos)[0] == pytest.approx(e_ref, abs=1e-12)

    atoms = system.atoms.copy()
    atoms.calc = MMOnly(ff)
    atoms.set_constraint(system.water_constraints(tip3p_geometry=True))
    atoms.positions = atoms.positions  # snap onto exact TIP3P geometry
    BFGS(atoms, logfile=None).run(fmax=1e-4, steps=500)
    e_kcal = atoms.get_potential_energy() / KCAL_PER_MOL_TO_EV
    r_oo = np.linalg.norm(atoms.positions[3] - atoms.positions[6])
    assert e_kcal == pytest.approx(-6.50, abs=0.06)  # this implementation: -6.54 kcal/mol, 2.747 Å
    assert r_oo == pytest.approx(2.75, abs=0.02)


@pytest.mark.parametrize("periodic", [False, True])
def test_qmmm_xtb_forces_finite_differences(tmp_path, demo, qm_charges, periodic):
    """QMMMCalculator(XTBTerm + MM) forces = -dE/dR on QM atoms and waters, with and without PBC."""
    system = demo if periodic else cluster(tmp_path, demo, 8)
    atoms = system.atoms.copy()
    atoms.calc = QMMMCalculator(system, XTBTerm(accuracy=0.01), MMForceField(system, cutoff_ang=8.0, qm_charges_e=qm_charges),
                                embedding_with(cutoff=8.0))
    f = atoms.get_forces()
    check = [0, 2, 3, 9, 10] if periodic else list(range(9)) + [9, 10, 11, 21]

    def energy(p):
        atoms.positions = p
        return atoms.get_potential_energy()

    num = numerical_forces(energy, system.atoms.positions.copy(), check, h=1e-3)
    assert np.allclose(f[check], num, atol=1e-4)
    assert atoms.calc.results["qm_energy"] < -300 and "sigma_force" not in atoms.calc.results
