"""Excited-state QM/MM labels: TDA/TDDFT in the MM point charges, bright state, its forces.

For one Frame (closed-shell QM region, MM sites as point charges) :func:`excited_state_labels`
computes the lowest ``n_states`` singlet excitations (TDA by default, full TDDFT/TDHF as an
option) with PySCF, their oscillator strengths and transition dipoles, picks the **bright
state** and returns its total energy and forces on every Frame atom.

Forces on QM atoms come from PySCF's TDA/TDDFT nuclear gradient (its hcore derivative already
contains the MM field). PySCF gives **no** excited-state forces on the MM charges, so they are
built here: the excited-state energy is a Lagrangian that is stationary in the orbitals once the
Z-vector (orbital-relaxation) term is added, and the MM charges enter it only through the
one-electron Hamiltonian and the QM-nuclei–MM Coulomb term. Hence

    dE_exc/dR_MM = Tr[P_relaxed · dh/dR_MM] + dE_nuc-MM/dR_MM,

with ``P_relaxed = P_ground + P_diff + Z`` the relaxed excited-state density. PySCF forms exactly
this density (``2*oo0 + dmz1doo``) inside its gradient code and exposes the local variables of
``grad_elec`` to the documented ``extra_force(atom_id, envs)`` hook; we capture it there and
contract it with the MM-charge derivative integrals (``grad_hcore_mm``), as the ground-state
engine does with the SCF density.

The MM sites carry the embedding-weighted charges q_a·w_g(a) (:mod:`mlmm.embedding`), as in the
ground-state labels. For the same reason as above, ∂E_exc/∂q_a is the potential of the QM nuclei
and of the relaxed excited-state density at site a, so the weights' chain-rule term
−Σ_a (∂E_exc/∂q_a) q_a ∇w_g(a) is built from that density too
(:func:`mlmm.engines.pyscf_qmmm.weight_chain_forces`). Tests check both QM and MM forces against
finite differences of the excited-state energy, with a molecule inside the switching shell.

Bright-state identification (:func:`assign_bright_state`): with ``td.tracking: reference`` every
stage compares each frame with **one** state reference (:func:`state_reference`, a
:class:`~mlmm.labeling.reports.StateReference` computed once on the input structure): the state
whose transition dipole overlaps the reference's most is taken (transition dipoles have an
arbitrary sign, so |μ·μ_ref| is used), which keeps the same diabatic state through a crossing and
across stages. The reference is first rotated into the frame's orientation (Kabsch alignment of
the QM atoms), since the molecule tumbles; the bright transition dipole is stored in the phase of
the reference (positive projection). With ``tracking: none`` each frame takes the state with the
largest oscillator strength among the lowest ``window`` states.
Ambiguous assignments (two candidates nearly tied) are flagged, not hidden.

Units: eV, Å, e; transition dipoles in e·Å. PySCF's Hartree/Bohr are converted here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from mlmm.engines.pyscf_qmmm import (
    SCFNotConverged,
    embedded_scf,
    run_scf,
    weight_chain_forces,
)
from mlmm.frames import qm_mask, validate_frame
from mlmm.labeling.reports import ExcitedFrameLabel, StateReference
from mlmm.settings import LevelSettings, TDSettings
from mlmm.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV

__all__ = [
    "ExcitedResult",
    "TDNotConverged",
    "BrightAssignment",
    "assign_bright_state",
    "kabsch_rotation",
    "reference_dipole_in",
    "state_reference",
    "excited_state_labels",
    "oscillator_strengths",
]


class TDNotConverged(RuntimeError):
    """The TDA/TDDFT eigenvalue solver did not converge for all requested states."""


@dataclass
class BrightAssignment:
    """Index (0-based among the computed states) of the bright state and how sure it is."""

    index: int
    ambiguous: bool
    score: float
    runner_up_score: float
    reason: str


@dataclass
class ExcitedResult:
    """Excited-state labels of one Frame (eV, eV/Å, e·Å)."""

    ground_energy_ev: float
    excitation_energies_ev: np.ndarray
    oscillator_strengths: np.ndarray
    transition_dipoles_e_ang: np.ndarray
    bright: BrightAssignment
    bright_energy_ev: float
    bright_forces_ev_per_ang: np.ndarray | None
    converged: bool
    wall_time_s: float

    @property
    def bright_excitation_energy_ev(self) -> float:
        return float(self.excitation_energies_ev[self.bright.index])

    @property
    def bright_oscillator_strength(self) -> float:
        return float(self.oscillator_strengths[self.bright.index])

    @property
    def bright_transition_dipole_e_ang(self) -> np.ndarray:
        return np.asarray(self.transition_dipoles_e_ang[self.bright.index])


def oscillator_strengths(excitation_energies_ev: np.ndarray, transition_dipoles_e_ang: np.ndarray) -> np.ndarray:
    """Length-gauge f = 2/3 ΔE |μ|² (atomic units) from ΔE (eV) and transition dipoles (e·Å)."""
    de_au = np.asarray(excitation_energies_ev, float) / HARTREE_TO_EV
    mu_au = np.asarray(transition_dipoles_e_ang, float) / BOHR_TO_ANGSTROM
    return 2.0 / 3.0 * de_au * np.einsum("ix,ix->i", mu_au, mu_au)


def assign_bright_state(
    oscillator_strengths_: np.ndarray,
    transition_dipoles_e_ang: np.ndarray,
    settings: TDSettings,
    reference_dipole_e_ang: np.ndarray | None = None,
) -> BrightAssignment:
    """Pick the bright state among the lowest ``settings.window`` states.

    Without ``reference_dipole_e_ang``: largest oscillator strength; ambiguous if the runner-up
    has f ≥ ``ambiguity_ratio``·f_best or f_best < ``f_min``. With a reference: the state whose
    transition dipole has the largest overlap |μ·μ_ref| / max(|μ|, |μ_ref|)² with the reference
    among the states with f ≥ f_min (all states if none is); ambiguous if that overlap is below
    ``min_overlap`` or the runner-up is within ``overlap_margin``.
    """
    f = np.asarray(oscillator_strengths_, float)[: settings.window]
    mu = np.asarray(transition_dipoles_e_ang, float)[: settings.window]
    if reference_dipole_e_ang is None:
        order = np.argsort(-f, kind="stable")
        best = int(order[0])
        second = float(f[order[1]]) if len(f) > 1 else 0.0
        if f[best] < settings.f_min:
            return BrightAssignment(best, True, float(f[best]), second, "no state above f_min")
        ambiguous = second >= settings.ambiguity_ratio * f[best]
        return BrightAssignment(best, bool(ambiguous), float(f[best]), second,
                                "near-degenerate oscillator strengths" if ambiguous else "largest f")
    ref = np.asarray(reference_dipole_e_ang, float)
    ref_norm = np.linalg.norm(ref)
    norms = np.linalg.norm(mu, axis=1)
    # |μ·μ_ref| / max(|μ|, |μ_ref|)² = |cos| × (smaller/larger norm): 1 for the same transition,
    # small for an orthogonal one *and* for a weak state that happens to be polarised alike
    cos = np.abs(mu @ ref) / np.maximum(np.maximum(norms, ref_norm) ** 2, 1e-300)
    candidates = np.flatnonzero(f >= settings.f_min)
    if len(candidates) == 0:
        candidates = np.arange(len(f))
    scores = np.full(len(f), -1.0)
    scores[candidates] = cos[candidates]
    order = np.argsort(-scores, kind="stable")
    best = int(order[0])
    second = float(scores[order[1]]) if len(candidates) > 1 else 0.0
    reasons = []
    if scores[best] < settings.min_overlap:
        reasons.append("low transition-dipole overlap with the reference")
    if len(candidates) > 1 and scores[best] - second < settings.overlap_margin:
        reasons.append("two states overlap the reference about equally")
    return BrightAssignment(best, bool(reasons), float(scores[best]), second,
                            "; ".join(reasons) or "transition-dipole overlap")


def kabsch_rotation(reference_ang: np.ndarray, current_ang: np.ndarray) -> np.ndarray:
    """Proper rotation U (3×3) that best maps the centred ``reference`` onto the centred ``current``.

    Used to carry a reference transition dipole into the orientation of the current frame:
    the molecule tumbles between frames, and a lab-frame dipole comparison would mistake a
    rotation for a change of state.
    """
    a = np.asarray(reference_ang, float) - np.mean(reference_ang, axis=0)
    b = np.asarray(current_ang, float) - np.mean(current_ang, axis=0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    return (u @ np.diag([1.0, 1.0, d]) @ vt).T


class _CaptureRelaxedDensity:
    """``extra_force`` hook: keeps PySCF's relaxed excited-state density from ``grad_elec``."""

    def __init__(self, original):
        self.original = original
        self.density_ao: np.ndarray | None = None

    def __call__(self, atom_id: int, envs: dict[str, Any]):
        if self.density_ao is None:
            # 2*oo0: ground-state (doubly occupied) density; dmz1doo: difference density + Z-vector
            dm = 2.0 * envs["oo0"] + envs["dmz1doo"]
            self.density_ao = 0.5 * (dm + dm.T)
        return self.original(atom_id, envs)


def _td_object(mf, settings: TDSettings):
    if settings.tda:
        td = mf.TDA()
    else:  # RHF objects offer TDHF, KS objects TDDFT (both full RPA-type response)
        td = mf.TDHF() if not hasattr(mf, "xc") else mf.TDDFT()
    td.nstates = settings.n_states
    td.conv_tol = settings.conv_tol
    td.singlet = True
    td.verbose = 0
    return td


def excited_state_labels(
    frame: Atoms,
    level: LevelSettings,
    settings: TDSettings,
    *,
    reference_dipole_e_ang: np.ndarray | None = None,
    forces: bool = True,
    state: int | None = None,
    stabilised: bool = False,
) -> ExcitedResult:
    """TDA/TDDFT labels of ``frame`` in its MM charges; bright-state energy (eV) and forces (eV/Å).

    ``state`` (0-based) overrides the bright-state assignment (used for finite-difference checks
    of a fixed state). ``forces=False`` skips the gradient (spectra only). Closed shells only.
    Raises :class:`SCFNotConverged` / :class:`TDNotConverged`.
    """
    validate_frame(frame)
    if int(frame.info["multiplicity"]) != 1:
        raise ValueError("excited-state labels need a closed-shell (singlet) QM region")
    if level.density_fit and forces:
        raise ValueError("PySCF has no density-fitted TDA/TDDFT gradients: set density_fit: false for excited forces")
    start = time.perf_counter()
    mask = qm_mask(frame)
    mol, mf = embedded_scf(frame, level)
    mf, n_cycles = run_scf(mf, level, stabilised)
    if not mf.converged:
        raise SCFNotConverged(f"SCF ({level.label}) not converged before TD", n_cycles=n_cycles,
                              energy_ev=float(mf.e_tot) * HARTREE_TO_EV)
    td = _td_object(mf, settings)
    td.kernel()
    converged = np.all(np.atleast_1d(td.converged))
    if not converged:
        raise TDNotConverged(f"{'TDA' if settings.tda else 'TDDFT'} ({level.label}): not all "
                             f"{settings.n_states} states converged")
    exc_ev = np.asarray(td.e, float) * HARTREE_TO_EV
    tdm = np.asarray(td.transition_dipole(), float) * BOHR_TO_ANGSTROM
    f = oscillator_strengths(exc_ev, tdm)
    if state is None:
        bright = assign_bright_state(f, tdm, settings, reference_dipole_e_ang)
    else:
        bright = BrightAssignment(int(state), False, float(f[state]), 0.0, "fixed state")
    ground_ev = float(mf.e_tot) * HARTREE_TO_EV
    bright_energy = ground_ev + float(exc_ev[bright.index])
    bright_forces = None
    if forces:
        bright_forces = _bright_forces(frame, mol, mf, td, bright.index, mask)
    return ExcitedResult(
        ground_energy_ev=ground_ev,
        excitation_energies_ev=exc_ev,
        oscillator_strengths=f,
        transition_dipoles_e_ang=tdm,
        bright=bright,
        bright_energy_ev=bright_energy,
        bright_forces_ev_per_ang=bright_forces,
        converged=True,
        wall_time_s=time.perf_counter() - start,
    )


def _bright_forces(frame: Atoms, mol, mf, td, index: int, mask: np.ndarray) -> np.ndarray:
    """Forces (eV/Å) of excited state ``index`` on QM atoms (PySCF) and MM charges (relaxed density),
    plus the embedding weights' term (potential of the relaxed density at the MM sites)."""
    tdg = td.nuc_grad_method()
    tdg.verbose = 0
    capture = _CaptureRelaxedDensity(tdg.extra_force)
    tdg.extra_force = capture
    grad_qm = tdg.kernel(state=index + 1)  # Eh/Bohr, total excited-state energy
    forces = np.zeros((len(frame), 3))
    forces[mask] = -np.asarray(grad_qm) * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    if (~mask).any():
        if capture.density_ao is None:
            raise RuntimeError("PySCF's TD gradient did not call extra_force; relaxed density unavailable")
        mf_grad = mf.nuc_grad_method()
        grad_mm = mf_grad.grad_hcore_mm(capture.density_ao) + mf_grad.grad_nuc_mm()
        forces[~mask] = -grad_mm * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
        forces += weight_chain_forces(frame, mol, capture.density_ao)
    return forces


def state_reference(frame: Atoms, level: LevelSettings, settings: TDSettings, source: str) -> StateReference:
    """The state reference of a run: the bright state of ``frame`` (the input structure's Frame) by
    largest oscillator strength, refused when that choice is ambiguous (it anchors every stage)."""
    from mlmm.labeling.db import frame_id

    result = excited_state_labels(frame, level, settings, forces=False)
    if result.bright.ambiguous:
        raise ValueError(
            f"{source}: the bright state of the reference structure is ambiguous ({result.bright.reason}: "
            f"f = {np.round(result.oscillator_strengths[: settings.window], 4).tolist()} in the lowest "
            f"{settings.window} states); it anchors the state identity of every stage — adjust excited.td.window, "
            "f_min or ambiguity_ratio"
        )
    mu = result.bright_transition_dipole_e_ang
    mu = mu if mu[np.argmax(np.abs(mu))] > 0 else -mu  # phase convention: largest component positive
    return StateReference(
        source=source, frame_id=frame_id(frame), qm_symbols=frame.get_chemical_symbols()[: int(qm_mask(frame).sum())],
        qm_positions_ang=frame.positions[qm_mask(frame)].tolist(), state_index=result.bright.index,
        excitation_energy_ev=result.bright_excitation_energy_ev, oscillator_strength=result.bright_oscillator_strength,
        transition_dipole_e_ang=mu.tolist(), level=level.to_dict(), td=settings.to_dict(),
    )


def reference_dipole_in(reference: StateReference, frame: Atoms) -> np.ndarray:
    """The reference transition dipole (e·Å) rotated into ``frame``'s orientation (Kabsch on the QM atoms)."""
    symbols = frame.get_chemical_symbols()[: int(qm_mask(frame).sum())]
    if symbols != list(reference.qm_symbols):
        raise ValueError(f"state reference {reference.source}: QM atoms {reference.qm_symbols} differ from the "
                         f"frame's {symbols} ({frame.info.get('source')})")
    rotation = kabsch_rotation(np.asarray(reference.qm_positions_ang), frame.positions[qm_mask(frame)])
    return rotation @ np.asarray(reference.transition_dipole_e_ang, float)


def excited_record(index: int, frame: Atoms, result: ExcitedResult,
                   reference_dipole_e_ang: np.ndarray | None = None) -> ExcitedFrameLabel:
    """The per-frame excited-state record (eV, e·Å) of frame ``index`` of a labelled sequence; with
    the (rotated) reference dipole, the bright transition dipole in the reference's phase."""
    from mlmm.labeling.db import frame_id

    phased = None
    if reference_dipole_e_ang is not None:
        mu = result.bright_transition_dipole_e_ang
        phased = (mu if mu @ reference_dipole_e_ang >= 0 else -mu).tolist()
    return ExcitedFrameLabel(
        index=index,
        frame_id=frame_id(frame),
        status="ok",
        ground_energy_ev=result.ground_energy_ev,
        excitation_energies_ev=result.excitation_energies_ev.tolist(),
        oscillator_strengths=result.oscillator_strengths.tolist(),
        transition_dipoles_e_ang=result.transition_dipoles_e_ang.tolist(),
        bright_state=result.bright.index,
        bright_ambiguous=result.bright.ambiguous,
        bright_reason=result.bright.reason,
        bright_score=result.bright.score,
        bright_excitation_energy_ev=result.bright_excitation_energy_ev,
        bright_oscillator_strength=result.bright_oscillator_strength,
        bright_energy_ev=result.bright_energy_ev,
        wall_s=result.wall_time_s,
        bright_transition_dipole_e_ang=phased,
    )


def label_excited_frames(
    frames: list[Atoms],
    level: LevelSettings,
    settings: TDSettings,
    *,
    reference: StateReference | None = None,
    forces: bool = True,
    log=None,
) -> tuple[list[tuple[Atoms, dict[str, np.ndarray], dict[str, Any]]], list[ExcitedFrameLabel]]:
    """Excited-state labels of frames, the bright state identified against ``reference``
    (required with ``settings.tracking == "reference"``; see the module docstring).

    Returns ``(rows, records)``. ``rows`` are label-DB rows in the ordinary labels contract
    (``energy``/``forces`` = the bright state's total energy and forces, so the ground-state
    training code trains a bright-state model unchanged); frames whose bright state is
    ambiguous are *not* given as training rows (their record says why). ``records`` has one
    :class:`ExcitedFrameLabel` per input frame (all states, f, transition dipoles, bright index and flag, or the
    failure reason). A frame that fails is retried once with the stabilised SCF.
    """
    import logging

    from mlmm.labeling.ground_state import failure_reason, label_metadata, label_properties

    log = log or logging.getLogger(__name__)
    if settings.tracking == "reference" and reference is None:
        raise ValueError("excited.td.tracking 'reference' needs the state reference (excited/state_reference.json)")
    rows: list[tuple[Atoms, dict[str, np.ndarray], dict[str, Any]]] = []
    records: list[ExcitedFrameLabel] = []
    for i, frame in enumerate(frames):
        ref = reference_dipole_in(reference, frame) if settings.tracking == "reference" else None
        result, reason = None, ""
        for stabilised in (False, True):
            try:
                result = excited_state_labels(frame, level, settings, reference_dipole_e_ang=ref,
                                              forces=forces, stabilised=stabilised)
                break
            except Exception as exc:  # one bad frame must not stop the chunk; the reason is recorded
                reason = failure_reason(exc)
                log.warning("frame %d (%s SCF): %s", i, "stabilised" if stabilised else "default", exc)
        if result is None:
            from mlmm.labeling.db import frame_id

            records.append(ExcitedFrameLabel(index=i, frame_id=frame_id(frame), status=reason))
            continue
        records.append(excited_record(i, frame, result, ref))
        log.info("frame %d: bright S%d dE = %.3f eV f = %.3f%s", i, result.bright.index + 1,
                 result.bright_excitation_energy_ev, result.bright_oscillator_strength,
                 " (ambiguous: " + result.bright.reason + ")" if result.bright.ambiguous else "")
        if forces and not result.bright.ambiguous:
            props = label_properties(frame, _as_qmmm_like(result))
            meta = {**label_metadata(frame, level), "level": f"{'tda' if settings.tda else 'tddft'}-{level.label}",
                    "bright_state": int(result.bright.index)}
            rows.append((frame, props, meta))
    return rows, records


@dataclass
class _BrightAsGround:
    energy_ev: float
    forces_ev_per_ang: np.ndarray


def _as_qmmm_like(result: ExcitedResult) -> _BrightAsGround:
    """The bright state's energy/forces in the shape the ground-state row builder reads."""
    return _BrightAsGround(result.bright_energy_ev, np.asarray(result.bright_forces_ev_per_ang))
