"""Excited-state QM/MM labels: forces vs finite differences, oscillator strengths, bright-state tracking.

Formaldehyde (bright π→π*-type state among the lowest four, dark n→π* S1) next to a TIP3P water
and a Na+ ion; STO-3G keeps one TDA solve at ~0.1 s (HF) / ~0.5 s (B3LYP).
"""

from __future__ import annotations

import numpy as np
import pytest
from pyscf import gto, qmmm, scf

from mlmm.embedding import frame_weights
from mlmm.frames import make_frame
from mlmm.labeling.db import read_labelled_frames, write_label_db
from mlmm.labeling.excited import (
    assign_bright_state,
    excited_state_labels,
    label_excited_frames,
    oscillator_strengths,
    reference_dipole_in,
    state_reference,
)
from mlmm.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV
from conftest import embedding_with, level_with, td_with

QM_SYMBOLS = ["C", "O", "H", "H"]
QM_POS = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.21], [0.94, 0.0, -0.59], [-0.94, 0.0, -0.59]])
MM_SYMBOLS = ["O", "H", "H", "Na"]
MM_POS = np.array([[0.3, 0.2, 3.1], [0.9, 0.5, 3.7], [-0.5, 0.1, 3.6], [2.5, -1.0, -1.5]])
MM_Q = np.array([-0.834, 0.417, 0.417, 1.0])

HF = level_with(method="hf", basis="sto-3g", conv_tol=1e-12)
B3LYP = level_with(method="b3lyp", basis="sto-3g", conv_tol=1e-12, grid_level=3)
TDA = td_with(n_states=4, window=4, tda=True, conv_tol=1e-10)
FULL = td_with(n_states=4, window=4, tda=False, conv_tol=1e-10)

# (atom, axis): C z, O z, H x on QM; water O z, water H x, Na y on MM
COORDS = [(0, 2), (1, 2), (2, 0), (4, 2), (5, 0), (7, 1)]


def frame(qm_pos=QM_POS, mm_pos=MM_POS, embedding=None):
    """Formaldehyde, the water and Na+ (weight 1 in the default 10 Å embedding)."""
    return make_frame(QM_SYMBOLS, qm_pos, MM_SYMBOLS, mm_pos, MM_Q, mm_molecule=[0, 0, 0, 1],
                      embedding=embedding or embedding_with(), qm_charge=0, multiplicity=1,
                      sampler="test", iteration=0, source="test:0", seed=0)


def fd_forces(fr, level, settings, state, step=5e-4):
    """-dE_state/dx (eV/Å) by central differences of the excited-state total energy."""
    out = []
    for atom, axis in COORDS:
        e = []
        for sign in (1, -1):
            d = fr.copy()
            d.positions[atom, axis] += sign * step
            e.append(excited_state_labels(d, level, settings, forces=False, state=state).bright_energy_ev)
        out.append(-(e[0] - e[1]) / (2 * step))
    return np.array(out)


def analytic(result):
    return np.array([result.bright_forces_ev_per_ang[a, x] for a, x in COORDS])


def test_tda_forces_on_qm_atoms_and_mm_charges_match_finite_differences():
    # HF/CIS: exact analytic gradient; central-difference truncation at h = 5e-4 Å is ~2e-5 eV/Å.
    fr = frame()
    result = excited_state_labels(fr, HF, TDA)
    assert result.bright.index == 2 and not result.bright.ambiguous  # S3 bright, S1 (n→π*) dark
    fd = fd_forces(fr, HF, TDA, result.bright.index)
    np.testing.assert_allclose(analytic(result), fd, atol=1e-4)
    assert np.abs(fd[3:]).max() > 0.05  # the MM forces checked are not trivially ~0


def test_tda_forces_include_the_embedding_weights():
    """The water moved into the switching shell (3–5 Å) of a 5 Å embedding: the bright-state energy is
    in the weighted charges, and its forces (QM atoms and the switched water) match central
    differences, which needs the weights' term from the relaxed density. Reached: 3e-5 eV/Å on the
    QM atoms (h² truncation), 1e-8 eV/Å on the switched water, where that term is ~1e-2 eV/Å."""
    from mlmm.engines.pyscf_qmmm import embedded_scf, weight_chain_forces

    mm = MM_POS + np.array([[0.0, 0.0, 2.1]] * 3 + [[0.0, 0.0, 0.0]])
    fr = frame(mm_pos=mm, embedding=embedding_with(cutoff=5.0, switch_width=2.0))
    w = frame_weights(fr)
    assert 0.2 < w[4] < 0.8 and w[7] == 1.0
    result = excited_state_labels(fr, HF, TDA, state=2)
    fd = fd_forces(fr, HF, TDA, 2)
    np.testing.assert_allclose(analytic(result), fd, atol=1e-4)
    # the weights' term is sizeable on the switched water (here for the ground-state density)
    mol, mf = embedded_scf(fr, HF)
    mf.kernel()
    assert np.abs(weight_chain_forces(fr, mol, mf.make_rdm1())[4:7]).max() > 1e-2


def test_full_tdhf_forces_match_finite_differences():
    fr = frame()
    result = excited_state_labels(fr, HF, FULL, state=0)
    fd = fd_forces(fr, HF, FULL, 0)
    np.testing.assert_allclose(analytic(result), fd, atol=1e-4)


def test_tddft_mm_forces_match_finite_differences():
    # B3LYP-TDA: the MM forces come from our relaxed-density contraction and must be as exact as
    # for HF; PySCF's QM-atom TD gradient omits the XC-grid response (grid moves with the atoms),
    # measured 1e-3 eV/Å at grid level 3, hence the looser QM tolerance.
    fr = frame()
    result = excited_state_labels(fr, B3LYP, TDA)
    fd = fd_forces(fr, B3LYP, TDA, result.bright.index)
    got = analytic(result)
    np.testing.assert_allclose(got[3:], fd[3:], atol=1e-5)
    np.testing.assert_allclose(got[:3], fd[:3], atol=3e-3)


def test_mm_forces_differ_from_ground_state_density_forces():
    # the relaxed excited-state density must matter: ground-state density forces on MM charges
    # differ from the excited-state ones by far more than the FD tolerance
    from mlmm.engines.pyscf_qmmm import qmmm_energy_forces

    fr = frame()
    exc = excited_state_labels(fr, HF, TDA)
    gs = qmmm_energy_forces(fr, HF)
    assert np.abs(exc.bright_forces_ev_per_ang[4:] - gs.forces_ev_per_ang[4:]).max() > 1e-2


def test_oscillator_strengths_match_pyscf_and_excitations_are_field_dependent():
    fr = frame()
    result = excited_state_labels(fr, HF, TDA, forces=False)
    mol = gto.M(atom=list(zip(QM_SYMBOLS, map(tuple, QM_POS))), unit="Angstrom", basis="sto-3g", verbose=0)
    mf = qmmm.mm_charge(scf.RHF(mol), MM_POS, MM_Q, unit="Angstrom")
    mf.conv_tol = 1e-12
    mf.kernel()
    td = mf.TDA()
    td.nstates, td.conv_tol = 4, 1e-10
    td.kernel()
    np.testing.assert_allclose(result.excitation_energies_ev, td.e * HARTREE_TO_EV, atol=1e-6)
    np.testing.assert_allclose(result.oscillator_strengths, td.oscillator_strength(gauge="length"), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result.bright_energy_ev, (mf.e_tot + td.e[2]) * HARTREE_TO_EV, atol=1e-6)
    vacuum = excited_state_labels(frame(mm_pos=MM_POS * 0 + 50.0), HF, TDA, forces=False)
    assert abs(vacuum.excitation_energies_ev[0] - result.excitation_energies_ev[0]) > 1e-3


def test_oscillator_strength_formula_in_ev_and_angstrom():
    # f = 2/3 ΔE μ² in atomic units: 1 Eh and 1 e·Bohr give 2/3
    f = oscillator_strengths(np.array([HARTREE_TO_EV]), np.array([[BOHR_TO_ANGSTROM, 0.0, 0.0]]))
    assert f[0] == pytest.approx(2.0 / 3.0)


def _crossing_path(n=11):
    """Two states along a path: A (bright, μ ∥ x) and B (μ ∥ z) swap energy order at λ=0.5.

    A loses some intensity along the path (|μ_A| = 1 - λ/5) and B is the stronger absorber
    (|μ_B| = 1), so after the crossing B has the larger f: following the largest f jumps to B,
    following the transition dipole of the reference (A at λ = 0) stays on A. States are listed in
    energy order as TDA returns them, so A is index 0 before the crossing and index 1 after it.
    At the crossing (λ = 0.5) the states mix (μ at ±45°).
    """
    f_seq, mu_seq, a_index = [], [], []
    for lam in np.linspace(0.0, 1.0, n):
        e_a, e_b = 4.0 + lam, 4.5
        mu_a, mu_b = np.array([1.0 - 0.2 * lam, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
        if abs(lam - 0.5) < 1e-9:
            mu_a, mu_b = (mu_a + mu_b) / np.sqrt(2), (mu_a - mu_b) / np.sqrt(2)
        states = sorted([(e_a, mu_a, "A"), (e_b, mu_b, "B"), (6.0, np.array([0.05, 0.05, 0.0]), "C")],
                        key=lambda s: s[0])
        e = np.array([s[0] for s in states])
        mu = np.array([s[1] for s in states])
        f_seq.append(oscillator_strengths(e, mu))
        mu_seq.append(mu * (-1) ** len(f_seq))  # arbitrary phase flips frame to frame
        a_index.append([s[2] for s in states].index("A"))
    return f_seq, mu_seq, a_index


def test_state_reference_follows_one_state_through_a_constructed_crossing():
    f_seq, mu_seq, a_index = _crossing_path()
    settings = td_with(n_states=3, window=3)
    reference = np.array([-1.0, 0.0, 0.0])  # A at λ = 0, any phase
    got = [assign_bright_state(f, mu, settings, reference) for f, mu in zip(f_seq, mu_seq)]
    mid = len(got) // 2
    assert [g.index for k, g in enumerate(got) if k != mid] == [a for k, a in enumerate(a_index) if k != mid]
    assert got[mid].ambiguous and not any(g.ambiguous for k, g in enumerate(got) if k != mid)
    assert a_index[0] == 0 and a_index[-1] == 1  # the crossing really reorders the states
    # each frame alone, in any order or subset, gives the same answer: the reference is global
    assert [assign_bright_state(f_seq[k], mu_seq[k], settings, reference).index for k in (10, 0, 7)] == \
        [got[10].index, got[0].index, got[7].index]
    by_f = [assign_bright_state(f, mu, settings) for f, mu in zip(f_seq, mu_seq)]
    assert by_f[-1].index != a_index[-1]  # largest-f alone would lose the state


def test_energy_window_largest_f_flags_near_ties_and_dark_windows():
    s = td_with(n_states=3, window=3)
    mu = np.eye(3)
    assert assign_bright_state(np.array([0.01, 0.5, 0.1]), mu, s) .index == 1
    assert assign_bright_state(np.array([0.3, 0.5, 0.1]), mu, s).ambiguous
    assert assign_bright_state(np.array([0.001, 0.002, 0.0]), mu, s).ambiguous
    # the window restricts the search to the lowest states
    assert assign_bright_state(np.array([0.2, 0.01, 0.9]), mu, td_with(n_states=3, window=2)).index == 0


def test_labelled_rows_follow_the_labels_contract(tmp_path):
    frames = [frame(), frame(qm_pos=QM_POS + np.array([0.0, 0.0, 0.02]))]
    rows, records = label_excited_frames(frames, HF, TDA, reference=state_reference(frames[0], HF, TDA, source="test"))
    assert [r.status for r in records] == ["ok", "ok"]
    assert all(r.bright_state == 2 for r in records)
    path = tmp_path / "bright.db"
    write_label_db(path, rows, HF.to_dict())
    back = read_labelled_frames(path)
    assert len(back) == 2
    assert back[0].get_potential_energy() == pytest.approx(records[0].bright_energy_ev)
    assert back[0].info["bright_state"] == 2
    assert np.abs(back[0].get_forces()[4:]).max() > 0


def test_state_reference_follows_the_state_when_the_molecule_tumbles():
    # the same frame rotated by 90° about two axes: the lab-frame transition dipole turns with it,
    # the reference is carried along by the Kabsch alignment, so the overlap stays 1 and nothing is
    # flagged, and the stored bright dipole is the rotated reference dipole, phase included
    fr = frame()
    rotated = fr.copy()
    rotated.rotate(90, "y", center=(0, 0, 0))
    rotated.rotate(90, "x", center=(0, 0, 0))
    settings = td_with(n_states=4, window=4, tracking="reference")
    reference = state_reference(fr, HF, settings, source="test")
    assert reference.state_index == 2
    mu_ref = np.array(reference.transition_dipole_e_ang)
    assert mu_ref[np.argmax(np.abs(mu_ref))] > 0  # the phase convention
    _, records = label_excited_frames([rotated], HF, settings, reference=reference, forces=False)
    assert records[0].bright_state == 2 and not records[0].bright_ambiguous
    assert records[0].bright_score == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(records[0].bright_transition_dipole_e_ang, reference_dipole_in(reference, rotated),
                               atol=1e-5)
    assert abs(mu_ref @ np.array(records[0].bright_transition_dipole_e_ang)) / mu_ref @ mu_ref < 0.5  # lab frame rotated
    assert records[0].bright_excitation_energy_ev == pytest.approx(reference.excitation_energy_ev, abs=1e-5)
    with pytest.raises(ValueError, match="needs the state reference"):
        label_excited_frames([rotated], HF, settings, forces=False)
    water = make_frame(["O", "H", "H"], MM_POS[:3], [], np.zeros((0, 3)), [], mm_molecule=[], embedding=embedding_with(),
                       qm_charge=0, multiplicity=1,
                       sampler="test", iteration=0, source="water", seed=0)
    with pytest.raises(ValueError, match=r"state reference test: QM atoms \['C', 'O', 'H', 'H'\] differ"):
        reference_dipole_in(reference, water)


def test_a_weak_state_polarised_like_the_bright_one_is_not_confused_with_it():
    # measured on acrolein in water (B3LYP/STO-3G): S4 (f ≈ 0.02) is polarised within 25° of the
    # bright S3 (f ≈ 0.4); a direction-only criterion flags such frames, the norm-weighted overlap not
    s = td_with(n_states=4, window=4)
    mu = np.array([[0.0, 0.01, 0.0], [0.0, 0.0, 0.05], [-0.66, -0.24, -0.15], [-0.16, -0.07, 0.04]])
    f = oscillator_strengths(np.array([3.4, 7.4, 8.2, 8.5]), mu)
    got = assign_bright_state(f, mu, s, reference_dipole_e_ang=np.array([0.72, 0.25, 0.15]))
    assert got.index == 2 and not got.ambiguous and got.runner_up_score < 0.3
