"""Generic Langevin driver shared by the xTB sampler and the MLP/MM dynamics.

ASE's Langevin integrator (BAOAB-like, RATTLE for constraints; friction 0 gives velocity
Verlet, i.e. NVE) with a seeded Maxwell–Boltzmann start, a per-`stride` callback that can stop
the run, and blow-up detection (non-finite energy, a force above a threshold, rigid-water SHAKE
or the QM engine failing).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import CalculationFailed
from ase.constraints import FixConstraint
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary
from tqdm import tqdm

from mlmm.system import ConstraintError

#: on_frame(step, atoms) -> None to continue, or a stop reason.
FrameCallback = Callable[[int, Atoms], "str | None"]


def blow_up_reason(atoms: Atoms, step: int, max_force_ev_ang: float) -> str | None:
    """A reason string if the current energy is non-finite or a force exceeds the threshold."""
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces(apply_constraint=False)
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        return f"blow-up at step {step}: non-finite energy or forces"
    fmax = float(np.sqrt(np.einsum("ij,ij->i", forces, forces)).max())
    if fmax > max_force_ev_ang:
        return f"blow-up at step {step}: max |F| = {fmax:.1f} eV/Å > max_force {max_force_ev_ang} eV/Å"
    return None


def run_langevin(
    atoms_with_calc: Atoms,
    *,
    steps: int,
    timestep_fs: float,
    temperature_K: float,
    friction_per_fs: float,
    seed: int,
    stride: int = 1,
    on_frame: FrameCallback | None = None,
    constraints: Sequence[FixConstraint] | None = None,
    max_force_ev_ang: float = np.inf,
    progress_desc: str | None = None,
    maxwell_boltzmann: bool = True,
) -> tuple[str | None, int]:
    """Run up to ``steps`` Langevin steps in place on ``atoms_with_calc`` (which must carry a calculator).

    ``constraints`` (if given) replace the atoms' constraints; momenta are drawn from
    Maxwell–Boltzmann at ``temperature_K`` (seeded, centre-of-mass motion removed) unless
    ``maxwell_boltzmann`` is False. ``on_frame(step, atoms)`` runs after steps stride, 2·stride, …;
    a returned string stops the run. Returns (stop reason or None, steps done).
    """
    if steps < 0 or stride < 1 or timestep_fs <= 0 or friction_per_fs < 0:
        raise ValueError(f"run_langevin: bad settings steps={steps} stride={stride} timestep_fs={timestep_fs} friction_per_fs={friction_per_fs}")
    atoms = atoms_with_calc
    if atoms.calc is None:
        raise ValueError("run_langevin: atoms have no calculator")
    if constraints is not None:
        atoms.set_constraint(list(constraints))
    rng_mb, rng_md = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    if maxwell_boltzmann:
        sigma_p = np.sqrt(atoms.get_masses() * units.kB * temperature_K)[:, None]
        atoms.set_momenta(sigma_p * rng_mb.standard_normal((len(atoms), 3)), apply_constraint=True)
        Stationary(atoms)
    dyn = Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng_md,
    )
    reason = blow_up_reason(atoms, 0, max_force_ev_ang)
    if reason:
        return reason, 0
    forces = atoms.get_forces(md=True)
    with tqdm(total=steps, desc=progress_desc, disable=progress_desc is None, mininterval=2.0) as bar:
        for step in range(1, steps + 1):
            try:
                forces = dyn.step(forces)
            except (ConstraintError, CalculationFailed) as err:
                return f"blow-up at step {step}: {err}", step - 1
            dyn.nsteps += 1
            bar.update(1)
            reason = blow_up_reason(atoms, step, max_force_ev_ang)
            if reason is None and on_frame is not None and step % stride == 0:
                reason = on_frame(step, atoms)
            if reason:
                return reason, step
    return None, steps
