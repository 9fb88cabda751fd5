"""Stage functions of the sampling rules (paths in, paths out)."""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from mlmm.frames import read_frames, write_frames
from mlmm.jobs import set_threads, system_from_config, write_json
from mlmm.logutil import setup_logging

log = logging.getLogger(__name__)


def sample_xtb_md(
    structure: str,
    system_cfg: dict[str, Any],
    sampler_cfg: dict[str, Any],
    frames_out: str,
    stats_out: str,
    log_path: str,
    threads: int = 1,
) -> None:
    """GFN2-xTB/TIP3P Langevin sampling (see :func:`mlmm.sampling.md_sampler.sample_xtb_md`)."""
    setup_logging(log_path)
    set_threads(threads)
    from mlmm.sampling.md_sampler import sample_xtb_md as run

    system = system_from_config(structure, system_cfg)
    t0 = time.perf_counter()
    frames = run(
        system,
        n_frames=sampler_cfg["n_frames"],
        stride=sampler_cfg["stride"],
        equilibration_steps=sampler_cfg["equilibration_steps"],
        timestep_fs=sampler_cfg["timestep"],
        temperature_K=sampler_cfg["temperature"],
        friction_per_fs=sampler_cfg["friction"],
        cutoff_ang=system_cfg["embedding_cutoff"],
        seed=sampler_cfg["seed"],
        log=log,
    )
    seconds = time.perf_counter() - t0
    write_frames(frames_out, frames)
    n_steps = sampler_cfg["equilibration_steps"] + sampler_cfg["n_frames"] * sampler_cfg["stride"]
    write_json(
        stats_out,
        {"sampler": "xtb_md", "n_frames": len(frames), "md_steps": n_steps, "wall_s": seconds, "ms_per_step": 1e3 * seconds / n_steps},
    )


def collect_frames(inputs: Sequence[str], frames_out: str, log_path: str) -> None:
    """Concatenate Frame files (the iteration-0 dataset from all active samplers)."""
    setup_logging(log_path)
    frames = [f for path in inputs for f in read_frames(path)]
    log.info("collected %d frames from %s", len(frames), list(inputs))
    write_frames(frames_out, frames)
