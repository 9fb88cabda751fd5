"""Physics checks of the PySCF QM/MM engine (electrostatic embedding), HF/STO-3G on water; the
labels in embedding-weighted charges against finite differences including the weights."""

from __future__ import annotations

import numpy as np
import pytest
from pyscf import gto, qmmm, scf

from mlmm.config import ConfigError
from mlmm.engines.pyscf_qmmm import (
    LevelOfTheoryError,
    SCFNotConverged,
    check_level,
    qmmm_energy_forces,
)
from mlmm.embedding import frame_weights, weighted_charges
from mlmm.frames import make_frame
from conftest import config_with, embedding_with, level_with
from mlmm.units import BOHR_TO_ANGSTROM, COULOMB_EV_ANGSTROM, HARTREE_TO_EV

#: CODATA 2014 Hartree energy in eV (the value ASE and mlmm.units use).
HARTREE_EV_LITERAL = 27.211386024367
BOHR_ANG_LITERAL = 0.52917721067

WATER_QM = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2399872, 0.92662721, 0.0]])
# a TIP3P water ~2.9 Å away (H-bond acceptor side) and a Na+ ion: 4 point charges
MM_SYMBOLS = ["O", "H", "H", "Na"]
MM_POS = np.array([[2.9, 0.1, 0.2], [3.4, 0.8, 0.1], [3.3, -0.7, 0.3], [-1.5, -2.6, 0.4]])
MM_Q = np.array([-0.834, 0.417, 0.417, 1.0])
MM_GROUPS = np.array([0, 0, 0, 1])
#: Schema-default embedding (10 Å): every test site here has weight 1.
EMBEDDING = embedding_with()

TIGHT = level_with(method="hf", basis="sto-3g", conv_tol=1e-12, max_cycle=100)


def water_frame(charges=MM_Q, qm_positions=WATER_QM, mm_positions=MM_POS, *, qm_charge=0, multiplicity=1):
    """Water QM region in the field of the MM charges (positions Å, charges e)."""
    return make_frame(
        ["O", "H", "H"], qm_positions, MM_SYMBOLS[: len(mm_positions)], mm_positions, charges,
        mm_molecule=MM_GROUPS[: len(mm_positions)], embedding=EMBEDDING, qm_charge=qm_charge, multiplicity=multiplicity, sampler="test", iteration=0, source="test:0", seed=0,
    )


def central_difference_forces(frame, level, coords, step_ang=5e-4):
    """-dE/dx (eV/Å) by central differences of the QM/MM energy for the (atom, axis) pairs."""
    out = []
    for atom, axis in coords:
        energies = []
        for sign in (1, -1):
            displaced = frame.copy()
            displaced.positions[atom, axis] += sign * step_ang
            energies.append(qmmm_energy_forces(displaced, level).energy_ev)
        out.append(-(energies[0] - energies[1]) / (2 * step_ang))
    return np.array(out)


def test_forces_match_finite_differences_on_qm_atoms_and_mm_charges():
    # Tolerance 1e-4 eV/Å: the central-difference truncation h²/6·E''' dominates; for the stiff
    # O–H stretch it is 7.8e-5 eV/Å at h = 1e-3 Å and 2.0e-5 at h = 5e-4 Å (scales as h², measured),
    # while SCF energy noise (1e-12 Eh) over 2h is ~3e-8 eV/Å.
    frame = water_frame()
    result = qmmm_energy_forces(frame, TIGHT)
    coords = [(a, x) for a in range(len(frame)) for x in range(3)]
    fd = central_difference_forces(frame, TIGHT, coords)
    analytic = result.forces_ev_per_ang.reshape(-1)
    np.testing.assert_allclose(analytic, fd, atol=1e-4, rtol=0)
    # the MM sites feel real forces (order 0.1–1 eV/Å here), so the check is not vacuous
    assert np.abs(result.forces_ev_per_ang[3:]).max() > 0.05
    # QM/MM forces of a closed system (QM + MM charges) sum to zero: no external field
    np.testing.assert_allclose(result.forces_ev_per_ang.sum(axis=0), 0.0, atol=1e-6)


#: A TIP3P water in the switching shell (3–5 Å) of SHELL_EMBEDDING, with weight ≈ 0.5, next to a
#: close water and Na+ (weight 1).
SHELL_EMBEDDING = embedding_with(cutoff=5.0, switch_width=2.0)
SHELL_WATER = MM_POS[:3] + np.array([2.1, 0.4, -0.3])


def shell_frame():
    mm = np.vstack([MM_POS[:3], SHELL_WATER, MM_POS[3:]])
    return make_frame(["O", "H", "H"], WATER_QM, ["O", "H", "H"] * 2 + ["Na"], mm, np.r_[MM_Q[:3], MM_Q],
                      mm_molecule=[0, 0, 0, 1, 1, 1, 2], embedding=SHELL_EMBEDDING, qm_charge=0, multiplicity=1,
                      sampler="test", iteration=0, source="test:0", seed=0)


def test_labels_in_weighted_charges_match_finite_differences_including_the_weights():
    """Energy in the charges q_a·w_g(a); forces vs central differences of that energy, whose weights
    move with the positions, on every QM atom and every atom of the switched water.

    Reached (h = 5e-4 Å): max deviation 2.0e-5 eV/Å, the h² truncation on the QM O–H stretch
    (5e-6 at h = 2.5e-4 Å), and 5e-9 eV/Å on the switched water; tolerance 1e-4 as for the
    fixed-charge forces above. The weights' chain-rule term itself is up to 0.04 eV/Å here (0.027 on
    the switched water's O), so leaving it out fails the check.
    """
    frame = shell_frame()
    w = frame_weights(frame)
    assert 0.3 < w[6] < 0.7 and np.all(w[[3, 4, 5]] == 1.0) and w[9] > 0.999
    result = qmmm_energy_forces(frame, TIGHT)
    # the energy is that of PySCF in the weighted charges, called directly
    mol = gto.M(atom=list(zip(["O", "H", "H"], WATER_QM)), unit="Angstrom", basis="sto-3g", verbose=0)
    mf = qmmm.mm_charge(scf.RHF(mol), frame.positions[3:], weighted_charges(frame)[3:], unit="Angstrom")
    mf.conv_tol = 1e-12
    assert result.energy_ev == pytest.approx(mf.kernel() * HARTREE_EV_LITERAL, abs=1e-6)
    coords = [(a, x) for a in (0, 1, 2, 6, 7, 8) for x in range(3)]
    fd = central_difference_forces(frame, TIGHT, coords)
    analytic = np.array([result.forces_ev_per_ang[a, x] for a, x in coords])
    np.testing.assert_allclose(analytic, fd, atol=1e-4, rtol=0)
    # without the weights' term (PySCF's forces at fixed charges) the switched water is off by far more
    grad = mf.Gradients()
    fixed = -(grad.grad_hcore_mm(mf.make_rdm1()) + grad.grad_nuc_mm()) * HARTREE_EV_LITERAL / BOHR_ANG_LITERAL
    assert np.abs(fixed[3:6] - result.forces_ev_per_ang[6:9]).max() > 2e-2
    np.testing.assert_allclose(result.forces_ev_per_ang.sum(axis=0), 0.0, atol=1e-6)


def test_open_shell_forces_on_mm_charges_match_finite_differences():
    # H2O+ doublet (UHF): the MM-site forces contract the total (alpha + beta) density
    frame = water_frame(qm_charge=1, multiplicity=2)
    result = qmmm_energy_forces(frame, TIGHT)
    coords = [(3, 0), (3, 1), (6, 0), (6, 2), (0, 0)]
    fd = central_difference_forces(frame, TIGHT, coords)
    analytic = np.array([result.forces_ev_per_ang[a, x] for a, x in coords])
    np.testing.assert_allclose(analytic, fd, atol=1e-4, rtol=0)


def test_energy_equals_direct_pyscf_call_in_bohr():
    frame = water_frame()
    ours = qmmm_energy_forces(frame, TIGHT).energy_ev
    bohr = 1.0 / BOHR_ANG_LITERAL
    mol = gto.M(
        atom=[("O", WATER_QM[0] * bohr), ("H", WATER_QM[1] * bohr), ("H", WATER_QM[2] * bohr)],
        unit="Bohr", basis="sto-3g", verbose=0,
    )
    mf = qmmm.mm_charge(scf.RHF(mol), MM_POS * bohr, MM_Q, unit="Bohr")
    mf.conv_tol = 1e-12
    direct_hartree = mf.kernel()
    assert mf.converged
    assert ours == pytest.approx(direct_hartree * HARTREE_EV_LITERAL, abs=1e-6)
    # the embedding matters: the gas-phase energy differs by far more than the tolerance
    gas = scf.RHF(mol).run(conv_tol=1e-12).e_tot * HARTREE_EV_LITERAL
    assert abs(ours - gas) > 0.1


def test_zero_mm_charges_give_the_gas_phase_energy():
    frame = water_frame(charges=np.zeros(len(MM_Q)))
    result = qmmm_energy_forces(frame, TIGHT)
    mol = gto.M(atom=list(zip(["O", "H", "H"], WATER_QM)), unit="Angstrom", basis="sto-3g", verbose=0)
    gas = scf.RHF(mol).run(conv_tol=1e-12)
    assert result.energy_ev == pytest.approx(gas.e_tot * HARTREE_EV_LITERAL, abs=1e-6)
    np.testing.assert_allclose(result.forces_ev_per_ang[3:], 0.0, atol=1e-12)
    # a Frame without any MM site takes the plain (non-embedded) path and agrees too
    bare = make_frame(["O", "H", "H"], WATER_QM, [], np.zeros((0, 3)), np.zeros(0), mm_molecule=[],
                      embedding=EMBEDDING, qm_charge=0,
                      multiplicity=1, sampler="test", iteration=0, source="test:0", seed=0)
    bare_result = qmmm_energy_forces(bare, TIGHT)
    assert bare_result.energy_ev == pytest.approx(result.energy_ev, abs=1e-6)
    np.testing.assert_allclose(bare_result.forces_ev_per_ang, result.forces_ev_per_ang[:3], atol=1e-5)


def test_units_coulomb_of_a_distant_charge_on_li_cation():
    """Li+ (closed 1s², no dipole) and a charge q at R: ΔE = k q/R in eV·Å, force k q/R² on q.

    Checks that Hartree→eV and Bohr→Å are each applied exactly once (a missing or doubled
    length conversion would be off by 1.89, an energy one by 27.2).
    """
    assert HARTREE_TO_EV == pytest.approx(HARTREE_EV_LITERAL, rel=1e-12)
    assert BOHR_TO_ANGSTROM == pytest.approx(BOHR_ANG_LITERAL, rel=1e-9)
    q, r_ang = 1.0, 20.0  # a whole ion: MM groups carry integer charge
    li = lambda charge: make_frame(  # noqa: E731
        ["Li"], np.zeros((1, 3)), ["Na"], np.array([[0.0, 0.0, r_ang]]), np.array([charge]),
        mm_molecule=[0], embedding=embedding_with(cutoff=30.0), qm_charge=1, multiplicity=1, sampler="test", iteration=0, source="test:0", seed=0,
    )
    embedded = qmmm_energy_forces(li(q), TIGHT)
    gas = qmmm_energy_forces(li(0.0), TIGHT)
    k = HARTREE_EV_LITERAL * BOHR_ANG_LITERAL  # e²/(4πε0) in eV·Å
    assert COULOMB_EV_ANGSTROM == pytest.approx(k, rel=1e-9)
    # polarisation of Li+ in STO-3G by a unit charge: 1.5e-6 eV at 15 Å, 5e-7 eV at 20 Å; no charge penetration
    assert embedded.energy_ev - gas.energy_ev == pytest.approx(k * q / r_ang, abs=1e-6)
    np.testing.assert_allclose(embedded.forces_ev_per_ang[1], [0.0, 0.0, k * q / r_ang**2], atol=1e-7)
    np.testing.assert_allclose(embedded.forces_ev_per_ang[0], [0.0, 0.0, -k * q / r_ang**2], atol=1e-7)


def test_stabilised_settings_reproduce_the_default_labels():
    frame = water_frame()
    level = level_with(method="hf", basis="sto-3g", conv_tol=1e-11)
    default = qmmm_energy_forces(frame, level)
    stabilised = qmmm_energy_forces(frame, level, stabilised=True)
    assert stabilised.stabilised and stabilised.converged
    assert stabilised.energy_ev == pytest.approx(default.energy_ev, abs=1e-7)
    np.testing.assert_allclose(stabilised.forces_ev_per_ang, default.forces_ev_per_ang, atol=1e-4)
    # with 3 iterations the damped DIIS stage stops unconverged and the Newton (SOSCF) stage
    # finishes: its energy and forces (gradient of the SOSCF object) are the same labels
    short = level_with(method="hf", basis="sto-3g", conv_tol=1e-11, max_cycle=3)
    newton = qmmm_energy_forces(frame, short, stabilised=True)
    assert newton.n_scf_cycles > short.max_cycle
    assert newton.energy_ev == pytest.approx(default.energy_ev, abs=1e-7)
    np.testing.assert_allclose(newton.forces_ev_per_ang, default.forces_ev_per_ang, atol=1e-4)
    # Mulliken charges of the QM atoms sum to the QM charge; O is negative, H positive
    assert default.mulliken_charges_e.sum() == pytest.approx(0.0, abs=1e-8)
    assert default.mulliken_charges_e[0] < 0 < default.mulliken_charges_e[1]


def test_stretched_water_does_not_converge_and_stabilised_retry_rescues_it():
    # O–H bonds stretched to 3.8 Å: restricted HF on a dissociated molecule, plain DIIS oscillates
    frame = water_frame(qm_positions=WATER_QM * 4.0)
    level = level_with(method="hf", basis="sto-3g", conv_tol=1e-10, max_cycle=30)
    with pytest.raises(SCFNotConverged) as err:
        qmmm_energy_forces(frame, level)
    assert err.value.n_cycles == 30
    rescued = qmmm_energy_forces(frame, level, stabilised=True)
    assert rescued.converged and rescued.n_scf_cycles <= 60


@pytest.mark.parametrize(
    "level, field",
    [({"method": "nonsense-functional"}, "labeling.level.method"), ({"basis": "no-such-basis"}, "labeling.level.basis")],
)
def test_names_pyscf_does_not_know_are_refused_naming_the_field(level, field):
    with pytest.raises(LevelOfTheoryError, match=field.replace(".", r"\.")):
        check_level(level_with(**level))


@pytest.mark.parametrize(
    "level, field",
    [
        ({"conv_tol": -1.0}, "labeling.level.conv_tol"),
        ({"max_cycle": "ten"}, "labeling.level.max_cycle"),
        ({"density_fit": "maybe"}, "labeling.level.density_fit"),
        ({"grid_level": 12}, "labeling.level.grid_level"),
        ({"basiss": "sto-3g"}, "labeling.level.basiss"),
    ],
)
def test_bad_level_values_are_refused_by_the_config_naming_the_field(level, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config_with(labeling={"level": level})


def test_level_names_are_case_insensitive():
    level = check_level(level_with(method="B3LYP", basis="def2-SVP", density_fit=True))
    assert (level.is_hf, level.label) == (False, "b3lyp/def2-svp+df")
    assert level_with(method="HF").is_hf
