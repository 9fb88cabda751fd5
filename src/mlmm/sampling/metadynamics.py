"""Well-tempered metadynamics on the xTB/MM potential with a real PLUMED kernel (OpenMM MD with a
PLUMED PythonForce, :class:`mlmm.engines.plumed.PlumedBias`).

The CVs and the bias are plain PLUMED input (pasted from the config). Atom numbers there are
PLUMED's 1-based indices of mlmm's full-system order: the QM atoms first (1..n_QM, in the order
of the structure file), then the MM molecules. PLUMED runs inside ``out_dir``, so relative
``FILE=`` names (HILLS, COLVAR) land there. A ``METAD`` line without ``BIASFACTOR`` gets the
configured one (well-tempered by default). The free-energy surface comes from PLUMED's own
``sum_hills`` on the HILLS file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from mlmm.dynamics.md import run_md
from mlmm.engines.plumed import PlumedBias, plumed_run_dir, prepare_plumed_input, read_plumed_table, run_plumed
from mlmm.sampling.common import xtb_mm_potential
from mlmm.settings import EmbeddingSettings, MetadynamicsSamplerSettings
from mlmm.system import System

_log = logging.getLogger(__name__)


def sum_hills(hills: str | Path, fes_out: str | Path) -> tuple[list[str], np.ndarray]:
    """Free-energy surface (kJ/mol, minimum 0) from a HILLS file with PLUMED's ``sum_hills``."""
    hills, fes_out = Path(hills).resolve(), Path(fes_out).resolve()
    if not len(read_plumed_table(hills)[1]):  # PLUMED's sum_hills crashes on an empty HILLS file
        raise ValueError(f"{hills}: no hill deposited; the run is shorter than METAD's PACE (more frames, stride "
                         "or equilibration steps, or a smaller PACE)")
    run_plumed(["sum_hills", "--hills", str(hills), "--outfile", str(fes_out), "--mintozero"], cwd=fes_out.parent)
    return read_plumed_table(fes_out)


def sample_metadynamics(
    system: System,
    sampler: MetadynamicsSamplerSettings,
    embedding: EmbeddingSettings,
    out_dir: str | Path,
    *,
    max_force_ev_ang: float = 50.0,
    log: logging.Logger | None = None,
) -> tuple[list[Atoms], dict]:
    """Biased xTB/MM Langevin MD with ``sampler.plumed`` (its ``biasfactor`` added where the METAD
    line has none; timestep fs, temperature K, friction 1/fs); a Frame every ``stride`` steps after
    ``equilibration_steps`` (the bias acts from step 0). Writes HILLS, COLVAR, plumed.log (and whatever else the input
    names) into ``out_dir``. Returns (frames, stats) with per-frame biased/unbiased energies (eV)."""
    log = log or _log
    seed, stride, equilibration_steps = sampler.seed, sampler.stride, sampler.equilibration_steps
    timestep_fs, temperature_K = sampler.timestep, sampler.temperature
    lines = prepare_plumed_input(sampler.plumed, sampler.biasfactor)
    potential = xtb_mm_potential(system, embedding)
    frames: list[Atoms] = []
    e_unbiased: list[float] = []
    e_bias: list[float] = []

    def on_frame(step: int, current: Atoms) -> str | None:
        frame, _ = system.cut_frame(current.positions, embedding, sampler="metadynamics", iteration=0,
                                    source=f"{system.source}:step{step}", seed=seed)
        frame.info["metad_bias_ev"] = float(current.info["bias_energy_ev"])
        frames.append(frame)
        e_unbiased.append(float(potential.results["energy"]))
        e_bias.append(float(current.info["bias_energy_ev"]))
        return None

    t0 = time.perf_counter()
    with plumed_run_dir(out_dir, "metadynamics", log) as kernel:
        with PlumedBias(lines, masses_amu=system.atoms.get_masses(), charges_e=system.charges_e,
                        timestep_fs=timestep_fs, temperature_K=temperature_K) as bias:
            run = run_md(potential, steps=equilibration_steps + sampler.n_frames * stride, timestep_fs=timestep_fs,
                         temperature_K=temperature_K, friction_per_fs=sampler.friction, seed=seed, stride=stride,
                         first_frame_after=equilibration_steps, on_frame=on_frame, max_force_ev_ang=max_force_ev_ang,
                         bias=bias, progress_desc="metadynamics")
    reason, done = run.stop_reason, run.steps_done
    seconds = time.perf_counter() - t0
    if reason:
        raise RuntimeError(f"metadynamics on {system.source}: {reason}")
    log.info("metadynamics: %d steps, %.1f ms/step, %d frames, final bias %.3f eV",
             done, 1e3 * seconds / max(done, 1), len(frames), e_bias[-1] if e_bias else float("nan"))
    stats = {"md_steps": done, "md_wall_s": seconds, "ms_per_step": 1e3 * seconds / max(done, 1),
             "unbiased_energy_ev": e_unbiased, "bias_ev": e_bias, "plumed_kernel": str(kernel),
             "plumed_input": lines}
    return frames, stats
