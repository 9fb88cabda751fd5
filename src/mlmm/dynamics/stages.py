"""Stage function of the production rule: MLP/MM MD with the final ensemble."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from mlmm.frames import atomic_write
from mlmm.jobs import set_threads, system_from_config, write_json
from mlmm.logutil import setup_logging

log = logging.getLogger(__name__)


def production(
    structure: str,
    models: Sequence[str],
    production_cfg: dict[str, Any],
    system_cfg: dict[str, Any],
    trajectory_out: str,
    topology_out: str,
    sigma_out: str,
    stats_out: str,
    log_path: str,
    threads: int = 1,
) -> None:
    """MLP/MM MD of the full system; trajectory in the input's atom order (+ PDB topology) and σ(t)."""
    setup_logging(log_path)
    set_threads(threads)
    import MDAnalysis as mda
    from ase.io import write

    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.model.ensemble import Ensemble

    system = system_from_config(structure, system_cfg)
    cfg = production_cfg
    result = run_mlp_md(
        system,
        Ensemble.load(list(models)),
        steps=cfg["steps"],
        timestep_fs=cfg["timestep"],
        temperature_K=cfg["temperature"],
        friction_per_fs=cfg["friction"],
        stride=cfg["stride"],
        seed=cfg["seed"],
        sigma_stop=cfg["sigma_stop"],
        max_force=cfg["max_force"],
        cutoff_ang=system_cfg["embedding_cutoff"],
        sampler="production",
        iteration=-1,
        source=f"{structure}:production",
        keep_full_system=True,
    )
    snapshots = [system.to_input_order(a) for a in result.snapshots]
    atomic_write(trajectory_out, lambda tmp: write(tmp, snapshots, format="extxyz"))
    universe = mda.Universe(structure)
    atomic_write(topology_out, lambda tmp: universe.atoms.write(tmp, file_format="PDB"))

    def write_sigma(tmp: str) -> None:
        np.savetxt(
            tmp,
            np.column_stack([result.times_fs, result.sigmas, result.potential_energies]),
            delimiter=",",
            header="time_fs,sigma_force_eV_per_A,potential_energy_eV",
            comments="",
        )

    atomic_write(sigma_out, write_sigma)
    write_json(
        stats_out,
        {
            "steps_requested": cfg["steps"],
            "steps_done": result.steps_done,
            "length_ps": result.steps_done * cfg["timestep"] / 1000.0,
            "stop_reason": result.stop_reason,
            "sigma_max": float(np.max(result.sigmas)) if len(result.sigmas) else None,
            "sigma_mean": float(np.mean(result.sigmas)) if len(result.sigmas) else None,
            "n_frames": len(snapshots),
            "ms_per_step": result.ms_per_step,
        },
    )
