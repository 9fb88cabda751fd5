"""MD of the full QM/MM system on OpenMM integrators, shared by the xTB/MM samplers, the AL walkers
and production.

The OpenMM System is the potential's partitioned force field (:func:`mlmm.mm.partition`: MM–MM,
QM–MM Lennard-Jones, rigid water, and for the ``xtb`` potential the fixed QM charges) plus an
``openmm.PythonForce`` whose callback evaluates the QM term on the Frame cut at the current
positions (:meth:`mlmm.potentials.QMMMCalculator.qm_energy_forces`) and returns its energy and
forces on the QM atoms and on every MM site the Frame holds; a PLUMED bias is a second
PythonForce (:class:`mlmm.engines.plumed.PlumedBias`). ``LangevinMiddleIntegrator`` runs NVT,
``VerletIntegrator`` NVE (friction 0); constraints (rigid water) are the force field's. Velocities
are drawn with ``setVelocitiesToTemperature(T, seed)`` and the thermostat's random numbers are
seeded, so a seed gives the same trajectory on one machine (CPU platform, its thread count).

Every ``stride`` steps the energies are evaluated at the current positions (the QM term once more
there, so σ and the saved Frame belong to those positions) and ``on_frame(step, atoms)`` sees the
full system; a returned string stops the run. Blow-ups stop it too: non-finite energy or forces,
a force above ``max_force_ev_ang`` (QM forces every step, all forces at each saved step), the QM
engine failing, or OpenMM giving up (e.g. NaN coordinates, constraints that cannot be satisfied).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import openmm
import openmm.unit as unit
from ase import Atoms, units
from ase.calculators.calculator import CalculationFailed
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm import tqdm

from mlmm.dynamics.trajectory import DCDTrajectory
from mlmm.engines.plumed import PlumedBias
from mlmm.mm import mm_platform
from mlmm.potentials import QMMMCalculator
from mlmm.units import KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM, KJ_PER_MOL_TO_EV, NM_TO_ANGSTROM

log = logging.getLogger(__name__)

#: on_frame(step, atoms) -> None to continue, or a stop reason.
FrameCallback = Callable[[int, Atoms], "str | None"]
#: Force groups of the MD System: the force field, the QM term, the PLUMED bias.
MM_GROUP, QM_GROUP, BIAS_GROUP = 0, 1, 2
#: Constraint tolerance (relative): tight, so NVE conserves energy (SETTLE is exact anyway).
CONSTRAINT_TOLERANCE = 1e-8
#: 1 Å/fs in ASE's velocity unit (ASE momenta are amu·Å/(ASE time unit)).
_ANG_PER_FS = 1.0 / units.fs


class BlowUp(RuntimeError):
    """The run left physical territory (raised inside a force callback, reported as a stop reason)."""


@dataclass
class MDRun:
    """What :func:`run_md` did: stop reason (None: all steps), steps done, the end state (positions
    and momenta, mlmm order) and the degrees of freedom of the temperature."""

    stop_reason: str | None
    steps_done: int
    final_state: Atoms
    n_dof: int


def _openmm_seed(seed: int, stream: int) -> int:
    """A positive 31-bit seed for OpenMM (0 would mean 'pick one at random') from ``seed``."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0] % (2**31 - 2)) + 1


class _Forces:
    """The PythonForce callbacks of one run: QM term and PLUMED bias, with the step they act at."""

    def __init__(self, potential: QMMMCalculator, bias: PlumedBias | None, max_force_ev_ang: float) -> None:
        self.potential = potential
        self.system = potential.system
        self.bias = bias
        self.max_force = max_force_ev_ang
        self.step = 0  #: MD step of the positions the next integration force evaluation sees
        self.integrating = False
        self.failure: BaseException | None = None
        self.qm_results: dict = {}
        self.bias_energy_kj = 0.0

    def qm(self, state: openmm.State):
        try:
            pos = self.system.from_file_order(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)) * NM_TO_ANGSTROM
            energy, forces, extras = self.potential.qm_energy_forces(pos)
            if self.integrating:  # elsewhere (set-up, saved steps) the driver checks all forces itself
                if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
                    raise BlowUp(f"blow-up at step {self.step}: non-finite QM energy or forces")
                fmax = float(np.sqrt(np.einsum("ij,ij->i", forces, forces)).max())
                if fmax > self.max_force:
                    raise BlowUp(f"blow-up at step {self.step}: max |F_QM| = {fmax:.1f} eV/Å > max_force {self.max_force} eV/Å")
        except Exception as err:  # OpenMM reports only the message; keep the exception itself
            self.failure = err
            raise
        self.qm_results = {"qm_energy": energy, **extras}
        if self.integrating and self.bias is None:
            self.step += 1
        return energy / KJ_PER_MOL_TO_EV, self.system.to_file_order(forces) / KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM

    def plumed(self, state: openmm.State):
        try:
            pos_nm = self.system.from_file_order(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
            box = self.system.mm.box_vectors_ang
            energy, forces = self.bias.compute(pos_nm, None if box is None else box / NM_TO_ANGSTROM, self.step,
                                               update=self.integrating)
        except Exception as err:
            self.failure = err
            raise
        self.bias_energy_kj = energy
        if self.integrating:
            self.step += 1
        return energy, self.system.to_file_order(forces)


def md_system(potential: QMMMCalculator, forces: _Forces) -> openmm.System:
    """The potential's partitioned force field (group 0) + the QM PythonForce (group 1) + the
    PLUMED PythonForce (group 2, if biased)."""
    system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(potential.mm.openmm_system))
    for force in system.getForces():
        force.setForceGroup(MM_GROUP)
    qm = openmm.PythonForce(forces.qm)
    qm.setForceGroup(QM_GROUP)
    system.addForce(qm)
    if forces.bias is not None:
        bias = openmm.PythonForce(forces.plumed)
        bias.setForceGroup(BIAS_GROUP)
        system.addForce(bias)
    return system


def degrees_of_freedom(system: openmm.System) -> int:
    """3 per massive particle, minus constraints, minus 3 if the centre-of-mass motion is removed."""
    n = sum(system.getParticleMass(i).value_in_unit(unit.dalton) > 0 for i in range(system.getNumParticles()))
    cm = any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())
    return 3 * n - system.getNumConstraints() - (3 if cm else 0)


def run_md(
    potential: QMMMCalculator,
    *,
    steps: int,
    timestep_fs: float,
    temperature_K: float,
    friction_per_fs: float,
    seed: int,
    stride: int = 1,
    first_frame_after: int = 0,
    on_frame: FrameCallback | None = None,
    max_force_ev_ang: float = np.inf,
    start: Atoms | None = None,
    bias: PlumedBias | None = None,
    trajectory: str | os.PathLike | None = None,
    progress_desc: str | None = None,
) -> MDRun:
    """Run up to ``steps`` MD steps of ``potential``'s system (see module docstring).

    Starts from the system's positions with velocities at ``temperature_K`` (seeded), or from
    ``start`` (positions and momenta in mlmm order, ASE units; constraints re-applied). Saved steps
    are ``first_frame_after + stride``, ``+ 2·stride``, …: there ``on_frame(step, atoms)`` gets the
    full system (mlmm order; momenta, ``calc`` with the total potential energy and forces, info
    ``kinetic_energy_ev`` (OpenMM's, at the step), ``temperature_K``, ``bias_energy_ev``), and the
    positions go to ``trajectory`` (DCD, structure-file order, written atomically). ``potential.results``
    then hold ``energy`` (unbiased QM + MM), ``qm_energy``, ``mm_energy`` and the QM term's outputs
    (``sigma_force`` …) at that step.
    """
    if steps < 0 or stride < 1 or timestep_fs <= 0 or friction_per_fs < 0 or first_frame_after < 0:
        raise ValueError(f"run_md: bad settings steps={steps} stride={stride} timestep_fs={timestep_fs} "
                         f"friction_per_fs={friction_per_fs} first_frame_after={first_frame_after}")
    system = potential.system
    forces = _Forces(potential, bias, max_force_ev_ang)
    omm_system = md_system(potential, forces)
    dt = timestep_fs * unit.femtosecond
    if friction_per_fs > 0:
        integrator = openmm.LangevinMiddleIntegrator(temperature_K * unit.kelvin, friction_per_fs / unit.femtosecond, dt)
        integrator.setRandomNumberSeed(_openmm_seed(seed, 1))
    else:
        integrator = openmm.VerletIntegrator(dt)
    integrator.setConstraintTolerance(CONSTRAINT_TOLERANCE)
    platform, properties = mm_platform(potential.mm.platform)
    context = openmm.Context(omm_system, integrator, platform, properties)
    if system.mm.box_vectors_ang is not None:
        context.setPeriodicBoxVectors(*(system.mm.box_vectors_ang * unit.angstrom))
    masses = system.atoms.get_masses()
    begin = system.atoms if start is None else start
    context.setPositions(system.to_file_order(begin.get_positions()) * unit.angstrom)
    context.applyConstraints(CONSTRAINT_TOLERANCE)
    if start is None or not start.has("momenta"):
        context.setVelocitiesToTemperature(temperature_K * unit.kelvin, _openmm_seed(seed, 0))
    else:
        velocities = start.get_momenta() / masses[:, None] / _ANG_PER_FS  # Å/fs
        context.setVelocities(system.to_file_order(velocities) * (unit.angstrom / unit.femtosecond))
        context.applyVelocityConstraints(CONSTRAINT_TOLERANCE)
    n_dof = degrees_of_freedom(omm_system)
    dcd = DCDTrajectory(trajectory, system, stride * timestep_fs) if trajectory is not None else None

    def frame(step: int) -> tuple[Atoms, str | None]:
        """The full system at ``step`` and a blow-up reason (or None)."""
        state = context.getState(getPositions=True, getVelocities=True, getEnergy=True, getForces=True)
        e_mm = context.getState(getEnergy=True, groups={MM_GROUP}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        e_total = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * KJ_PER_MOL_TO_EV
        f = system.from_file_order(np.asarray(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)))
        f = f * KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM
        atoms = system.atoms.copy()
        atoms.positions = system.from_file_order(np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)))
        v = system.from_file_order(np.asarray(state.getVelocities(asNumpy=True).value_in_unit(unit.angstrom / unit.femtosecond)))
        atoms.set_momenta(v * masses[:, None] * _ANG_PER_FS)
        atoms.calc = SinglePointCalculator(atoms, energy=e_total, forces=f)
        ekin = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole) * KJ_PER_MOL_TO_EV
        e_bias = forces.bias_energy_kj * KJ_PER_MOL_TO_EV if bias is not None else 0.0
        atoms.info.update(kinetic_energy_ev=ekin, temperature_K=2.0 * ekin / (n_dof * units.kB), bias_energy_ev=e_bias)
        e_qm = forces.qm_results["qm_energy"]
        potential.results = {**forces.qm_results, "mm_energy": e_mm * KJ_PER_MOL_TO_EV,
                             "energy": e_qm + e_mm * KJ_PER_MOL_TO_EV}
        if not np.isfinite(e_total) or not np.all(np.isfinite(f)):
            return atoms, f"blow-up at step {step}: non-finite energy or forces"
        fmax = float(np.sqrt(np.einsum("ij,ij->i", f, f)).max())
        if fmax > max_force_ev_ang:
            return atoms, f"blow-up at step {step}: max |F| = {fmax:.1f} eV/Å > max_force {max_force_ev_ang} eV/Å"
        return atoms, None

    def failed(err: openmm.OpenMMException, step: int) -> str:
        """The stop reason of an OpenMM failure; an exception of a callback that is no blow-up or
        engine failure (a bug) is raised again."""
        cause = forces.failure
        if cause is None:  # OpenMM's own: NaN coordinates, constraints that cannot be met
            return f"blow-up at step {step}: OpenMM: {err}"
        if isinstance(cause, BlowUp):
            return str(cause)
        if isinstance(cause, CalculationFailed):
            return f"blow-up at step {step}: QM engine failed: {cause}"
        raise cause

    current = begin
    try:
        try:
            current, reason = frame(0)
        except openmm.OpenMMException as err:
            return MDRun(failed(err, 0), 0, _bare(begin), n_dof)
        if reason:
            return MDRun(reason, 0, _bare(current), n_dof)
        done = 0
        plan = [min(first_frame_after, steps)] if first_frame_after else []
        remaining = steps - sum(plan)
        plan += [stride] * (remaining // stride) + ([remaining % stride] if remaining % stride else [])
        with tqdm(total=steps, desc=progress_desc, disable=progress_desc is None, mininterval=2.0) as bar:
            for chunk in plan:
                forces.failure = None
                forces.integrating = True
                try:
                    integrator.step(chunk)
                except openmm.OpenMMException as err:
                    return MDRun(failed(err, forces.step), forces.step, _bare(current), n_dof)
                finally:
                    forces.integrating = False
                done += chunk
                forces.step = done
                bar.update(chunk)
                saved = done > first_frame_after and (done - first_frame_after) % stride == 0
                if not saved and done < steps:
                    continue
                try:
                    current, reason = frame(done)
                except openmm.OpenMMException as err:
                    return MDRun(failed(err, done), done, _bare(current), n_dof)
                if reason:
                    return MDRun(reason, done, _bare(current), n_dof)
                if saved:
                    if dcd is not None:
                        dcd.write(current.positions)
                    if on_frame is not None:
                        reason = on_frame(done, current)
                        if reason:
                            return MDRun(reason, done, _bare(current), n_dof)
        return MDRun(None, done, _bare(current), n_dof)
    finally:
        if dcd is not None:
            dcd.close()


def minimize(potential: QMMMCalculator, positions_ang: np.ndarray, *, tolerance_ev_ang: float = 0.05,
             max_iterations: int = 0) -> np.ndarray:
    """Positions (Å, mlmm order) of a local minimum of ``potential`` from ``positions_ang``
    (OpenMM's L-BFGS minimiser on the MD System, constraints kept; RMS force tolerance in eV/Å,
    ``max_iterations`` 0: until converged)."""
    system = potential.system
    forces = _Forces(potential, None, np.inf)
    omm_system = md_system(potential, forces)
    platform, properties = mm_platform(potential.mm.platform)
    context = openmm.Context(omm_system, openmm.VerletIntegrator(1.0 * unit.femtosecond), platform, properties)
    if system.mm.box_vectors_ang is not None:
        context.setPeriodicBoxVectors(*(system.mm.box_vectors_ang * unit.angstrom))
    context.setPositions(system.to_file_order(np.asarray(positions_ang, float)) * unit.angstrom)
    context.applyConstraints(CONSTRAINT_TOLERANCE)
    openmm.LocalEnergyMinimizer.minimize(context, tolerance_ev_ang / KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM, max_iterations)
    pos = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    return system.from_file_order(np.asarray(pos))


def _bare(atoms: Atoms) -> Atoms:
    """A copy without calculator (positions and momenta: a restart point)."""
    out = atoms.copy()
    out.calc = None
    return out
