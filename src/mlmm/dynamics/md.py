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
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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
#: Steps between Monte Carlo barostat moves (NPT).
BAROSTAT_INTERVAL = 25
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


@dataclass(frozen=True)
class CheckpointSpec:
    """Where and how often a run checkpoints (``interval_steps``) and what makes it the same run
    (``signature``: a digest of its settings, models and structure)."""

    path: Path
    interval_steps: int
    signature: str


class Checkpoint:
    """Restart point of a run (:class:`CheckpointSpec`): OpenMM's checkpoint of the Context
    (positions, velocities, box, the thermostat's random-number state), the step, the DCD written
    so far and the caller's own accumulated state (``save_state()`` -> picklable,
    ``load_state(saved)``), written atomically at the first saved step ``interval_steps`` after the
    last one. A run that finds one with its signature continues from it, and gives the same
    trajectory as a run never interrupted (same machine and thread count, a QM term without memory
    of its previous call); one of another signature (settings, models or structure changed) is
    dropped with a warning."""

    def __init__(self, spec: CheckpointSpec, save_state: Callable[[], Any], load_state: Callable[[Any], None]) -> None:
        if spec.interval_steps < 1:
            raise ValueError(f"checkpoint interval must be >= 1 step, got {spec.interval_steps}")
        self.path = Path(spec.path)
        self.interval_steps = int(spec.interval_steps)
        self.signature = spec.signature
        self.save_state = save_state
        self.load_state = load_state

    def read(self) -> dict | None:
        """The saved checkpoint (None if there is none)."""
        if not self.path.is_file():
            return None
        with open(self.path, "rb") as fh:
            saved = pickle.load(fh)
        if saved["signature"] != self.signature:
            log.warning("%s is the checkpoint of another run (settings, models or structure changed): starting afresh",
                        self.path)
            return None
        return saved

    def write(self, step: int, context: openmm.Context, dcd: DCDTrajectory | None) -> None:
        saved = {"signature": self.signature, "step": int(step), "openmm": context.createCheckpoint(),
                 "dcd": None if dcd is None else dcd.mark(), "state": self.save_state()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(saved, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _openmm_seed(seed: int, stream: int) -> int:
    """A positive 31-bit seed for OpenMM (0 would mean 'pick one at random') from ``seed``."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0] % (2**31 - 2)) + 1


class _Forces:
    """The PythonForce callbacks of one run: QM term and PLUMED bias, with the step they act at."""

    def __init__(self, potential: QMMMCalculator, bias: PlumedBias | None, max_force_ev_ang: float,
                 npt: bool = False) -> None:
        self.potential = potential
        self.npt = npt  #: the box changes: the QM term cuts its Frame in the State's box
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
            box = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)) if self.npt else None
            energy, forces, extras = self.potential.qm_energy_forces(pos, box)
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
            energy, forces, _ = self.bias.compute(pos_nm, None if box is None else box / NM_TO_ANGSTROM, self.step,
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
    qm.setUsesPeriodicBoundaryConditions(forces.npt)
    system.addForce(qm)
    if forces.bias is not None:
        bias = openmm.PythonForce(forces.plumed)
        bias.setForceGroup(BIAS_GROUP)
        system.addForce(bias)
    return system


def _qm_molecule_bonds(system) -> openmm.HarmonicBondForce:
    """Zero-strength bonds along the topology's bonds inside the QM region: the partition removed
    its bonded terms, and without them OpenMM's barostat would scale each QM atom on its own."""
    qm = set(system.original_index[: system.n_qm].tolist())
    force = openmm.HarmonicBondForce()
    for a, b in system.mm.topology.bonds():
        if a.index in qm and b.index in qm:
            force.addBond(a.index, b.index, 0.1, 0.0)
    force.setForceGroup(MM_GROUP)
    return force


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
    checkpoint: Checkpoint | None = None,
    pressure_bar: float | None = None,
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
    (``sigma_force`` …) at that step. ``checkpoint``: resume from it if it exists, write it every
    ``checkpoint.interval_steps`` (at saved steps), remove it when the run ends (not with a bias:
    PLUMED's hills are not part of it). ``pressure_bar``: NPT with OpenMM's Monte Carlo barostat
    (every :data:`BAROSTAT_INTERVAL` steps, the QM region scaled as one molecule, its Frames cut
    in the current box; periodic systems, a thermostat and no PLUMED bias).
    """
    if steps < 0 or stride < 1 or timestep_fs <= 0 or friction_per_fs < 0 or first_frame_after < 0:
        raise ValueError(f"run_md: bad settings steps={steps} stride={stride} timestep_fs={timestep_fs} "
                         f"friction_per_fs={friction_per_fs} first_frame_after={first_frame_after}")
    if checkpoint is not None and bias is not None:
        raise ValueError("run_md: a biased (PLUMED) run cannot be checkpointed")
    system = potential.system
    if pressure_bar is not None and (system.mm.box_vectors_ang is None or friction_per_fs == 0 or bias is not None):
        raise ValueError("run_md: NPT (pressure_bar) needs a periodic system, a thermostat (friction > 0) and no PLUMED bias")
    forces = _Forces(potential, bias, max_force_ev_ang, npt=pressure_bar is not None)
    omm_system = md_system(potential, forces)
    if pressure_bar is not None:
        barostat = openmm.MonteCarloBarostat(pressure_bar * unit.bar, temperature_K * unit.kelvin, BAROSTAT_INTERVAL)
        barostat.setRandomNumberSeed(_openmm_seed(seed, 2))
        omm_system.addForce(barostat)
        omm_system.addForce(_qm_molecule_bonds(system))
    dt = timestep_fs * unit.femtosecond
    if friction_per_fs > 0:
        integrator = openmm.LangevinMiddleIntegrator(temperature_K * unit.kelvin, friction_per_fs / unit.femtosecond, dt)
        integrator.setRandomNumberSeed(_openmm_seed(seed, 1))
    else:
        integrator = openmm.VerletIntegrator(dt)
    integrator.setConstraintTolerance(CONSTRAINT_TOLERANCE)
    context = _context(potential, omm_system, integrator)
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
    resumed = checkpoint.read() if checkpoint is not None else None
    if resumed is not None:
        context.loadCheckpoint(resumed["openmm"])
        checkpoint.load_state(resumed["state"])
        log.info("resuming from %s at step %d", checkpoint.path, resumed["step"])
    dcd = None if trajectory is None else DCDTrajectory(trajectory, system, stride * timestep_fs,
                                                        resume=None if resumed is None else resumed["dcd"])

    def frame(step: int) -> tuple[Atoms, str | None]:
        """The full system at ``step`` and a blow-up reason (or None)."""
        state = context.getState(getPositions=True, getVelocities=True, getEnergy=True, getForces=True)
        e_mm = context.getState(getEnergy=True, groups={MM_GROUP}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        e_total = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * KJ_PER_MOL_TO_EV
        f = system.from_file_order(np.asarray(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)))
        f = f * KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM
        atoms = system.atoms.copy()
        if forces.npt:
            atoms.cell = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom))
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

    def observe(step: int, previous: Atoms) -> tuple[Atoms, MDRun | None]:
        """The frame at ``step`` and, where the run stops there, its MDRun: after an OpenMM
        failure with ``previous`` (the last good frame) as restart point, after a blow-up with the
        blown-up frame."""
        try:
            atoms, reason = frame(step)
        except openmm.OpenMMException as err:
            return previous, MDRun(failed(err, step), step, _bare(previous), n_dof)
        if reason:
            return atoms, MDRun(reason, step, _bare(atoms), n_dof)
        return atoms, None

    def loop() -> MDRun:
        done = 0 if resumed is None else resumed["step"]
        current, stopped = observe(done, begin)
        if stopped is not None:
            return stopped
        plan = [min(first_frame_after, steps)] if first_frame_after else []
        remaining = steps - sum(plan)
        plan += [stride] * (remaining // stride) + ([remaining % stride] if remaining % stride else [])
        ends = np.cumsum(plan)
        last_checkpoint = done
        with tqdm(total=steps, initial=done, desc=progress_desc, disable=progress_desc is None, mininterval=2.0) as bar:
            for chunk, end in zip(plan, ends):
                if end <= done:  # done before the checkpoint this run resumed from
                    continue
                forces.step = done
                forces.failure = None
                forces.integrating = True
                try:
                    integrator.step(chunk)
                except openmm.OpenMMException as err:
                    return MDRun(failed(err, forces.step), forces.step, _bare(current), n_dof)
                finally:
                    forces.integrating = False
                done += chunk
                bar.update(chunk)
                saved = done > first_frame_after and (done - first_frame_after) % stride == 0
                if not saved and done < steps:
                    continue
                current, stopped = observe(done, current)
                if stopped is not None:
                    return stopped
                if saved:
                    if dcd is not None:
                        dcd.write(current.positions, current.cell.array if forces.npt else None)
                    if on_frame is not None:
                        reason = on_frame(done, current)
                        if reason:
                            return MDRun(reason, done, _bare(current), n_dof)
                    if checkpoint is not None and done - last_checkpoint >= checkpoint.interval_steps and done < steps:
                        checkpoint.write(done, context, dcd)
                        last_checkpoint = done
        return MDRun(None, done, _bare(current), n_dof)

    try:
        result = loop()
    except BaseException:  # a crash keeps the partial DCD and the checkpoint for a rerun
        if dcd is not None:
            dcd.file.close()
        raise
    if dcd is not None:
        dcd.close()
    if checkpoint is not None:
        checkpoint.remove()
    return result


def _context(potential: QMMMCalculator, omm_system: openmm.System, integrator: openmm.Integrator) -> openmm.Context:
    """A Context of ``omm_system`` on the potential's MM platform, in the system's box (if periodic)."""
    platform, properties = mm_platform(potential.mm.platform)
    context = openmm.Context(omm_system, integrator, platform, properties)
    if potential.system.mm.box_vectors_ang is not None:
        context.setPeriodicBoxVectors(*(potential.system.mm.box_vectors_ang * unit.angstrom))
    return context


def md_energy_forces(potential: QMMMCalculator) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """What every MD step of ``potential`` integrates, as a function: positions (Å, mlmm order) →
    total energy (eV) and forces (eV/Å, mlmm order) of the MD's OpenMM System (the partitioned force
    field + the QM term as PythonForce, :func:`md_system`) on the potential's MM platform. For
    checks of the MD forces against finite differences of the same energy."""
    system = potential.system
    context = _context(potential, md_system(potential, _Forces(potential, None, np.inf)), openmm.VerletIntegrator(1.0))

    def evaluate(positions_ang: np.ndarray) -> tuple[float, np.ndarray]:
        context.setPositions(system.to_file_order(np.asarray(positions_ang, float)) * unit.angstrom)
        state = context.getState(getEnergy=True, getForces=True)
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * KJ_PER_MOL_TO_EV
        forces = np.asarray(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
        return energy, system.from_file_order(forces * KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM)

    return evaluate


def minimize(potential: QMMMCalculator, positions_ang: np.ndarray, *, tolerance_ev_ang: float = 0.05,
             max_iterations: int = 0) -> np.ndarray:
    """Positions (Å, mlmm order) of a local minimum of ``potential`` from ``positions_ang``
    (OpenMM's L-BFGS minimiser on the MD System, constraints kept; RMS force tolerance in eV/Å,
    ``max_iterations`` 0: until converged)."""
    system = potential.system
    context = _context(potential, md_system(potential, _Forces(potential, None, np.inf)),
                       openmm.VerletIntegrator(1.0 * unit.femtosecond))
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
