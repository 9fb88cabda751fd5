"""MLP/MM well-tempered metadynamics with PLUMED and free-energy profiles with error bars.

Each replica is an independent biased MLP/MM run (own seed) that writes HILLS and COLVAR in its
folder; its free-energy surface comes from PLUMED's ``sum_hills`` on a grid shared by all
replicas. The profile reported is the replica mean (each replica shifted to minimum 0) with the
standard error over replicas as error bar. Energies in kJ/mol (PLUMED's unit) in the files,
CV values in PLUMED's units (nm for distances, rad for angles).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlmm.engines.plumed import PlumedBias, plumed_run_dir, prepare_plumed_input, read_plumed_table, run_plumed

log = logging.getLogger(__name__)


def run_mlp_metadynamics(system, potential, *, plumed_input: str, biasfactor: float | None, out_dir: str | Path, **md_kwargs: Any):
    """One biased MLP/MM replica on ``potential`` (``md_kwargs`` as for :func:`run_mlp_md`); PLUMED files land
    in ``out_dir``. Returns the :class:`MLPMDResult` (σ and energies unbiased)."""
    from mlmm.dynamics.mlp_md import run_mlp_md

    lines = prepare_plumed_input(plumed_input, biasfactor)
    log.info("MLP/MM metadynamics input:\n  %s", "\n  ".join(lines))
    with plumed_run_dir(out_dir, "MLP/MM metadynamics", log):
        with PlumedBias(lines, masses_amu=system.atoms.get_masses(), charges_e=system.charges_e,
                        timestep_fs=md_kwargs["timestep_fs"], temperature_K=md_kwargs["temperature_K"]) as bias:
            return run_mlp_md(system, potential, bias=bias, **md_kwargs)


def hills_cv_range(hills: Sequence[str | Path]) -> tuple[float, float, bool]:
    """Grid range of the (single) CV over all HILLS files and whether it is periodic.

    Periodic CVs (``#! SET min_<cv>``/``max_<cv>`` in the header) span their period; others the
    visited range widened by three hill widths.
    """
    lo, hi, period = np.inf, -np.inf, {}
    for path in hills:
        names, table = read_plumed_table(path)
        cvs = [n for n in names if n not in ("time", "height", "biasf") and not n.startswith("sigma_")]
        if len(cvs) != 1:
            raise ValueError(f"{path}: free-energy profiles need exactly one CV, found {cvs}")
        sigma = table[:, names.index(f"sigma_{cvs[0]}")]
        values = table[:, names.index(cvs[0])]
        lo = min(lo, float((values - 3 * sigma).min()))
        hi = max(hi, float((values + 3 * sigma).max()))
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if line.startswith("#! SET") and parts[2] in (f"min_{cvs[0]}", f"max_{cvs[0]}"):
                period[parts[2][:3]] = _plumed_number(parts[3])
    if len(period) == 2:
        return period["min"], period["max"], True
    return lo, hi, False


def _plumed_number(text: str) -> float:
    """A PLUMED header number such as '-pi', 'pi' or '3.14'."""
    return float(text.replace("pi", repr(np.pi))) if "pi" in text else float(text)


def replica_fes(hills: str | Path, fes_out: str | Path, cv_min: float, cv_max: float, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(CV grid, F in kJ/mol with minimum 0) from ``sum_hills`` on a fixed grid."""
    hills, fes_out = Path(hills).resolve(), Path(fes_out).resolve()
    run_plumed(["sum_hills", "--hills", str(hills), "--outfile", str(fes_out), "--mintozero",
                "--min", f"{cv_min:.6f}", "--max", f"{cv_max:.6f}", "--bin", str(n_bins)], cwd=fes_out.parent)
    names, table = read_plumed_table(fes_out)
    return table[:, 0], table[:, 1]


def combine_fes(profiles: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Replica mean of F (each shifted to minimum 0; the mean shifted again) and its standard
    error (std over replicas / sqrt(n); zero for one replica), kJ/mol."""
    stack = np.stack([p - p.min() for p in profiles])
    mean = stack.mean(axis=0)
    err = stack.std(axis=0, ddof=1) / np.sqrt(len(stack)) if len(stack) > 1 else np.zeros_like(mean)
    return mean - mean.min(), err


def free_energy_profile(hills: Sequence[str], out_dir: str | Path, n_bins: int) -> dict[str, Any]:
    """FES of every replica on a common grid, their mean and standard error."""
    out_dir = Path(out_dir)
    cv_min, cv_max, periodic = hills_cv_range(hills)
    grids, profiles = [], []
    for k, path in enumerate(hills):
        grid, fes = replica_fes(path, out_dir / f"fes_replica{k}.dat", cv_min, cv_max, n_bins)
        grids.append(grid)
        profiles.append(fes)
    mean, err = combine_fes(profiles)
    return {"cv": grids[0], "free_energy_kJ_mol": mean, "standard_error_kJ_mol": err, "replicas": profiles,
            "periodic": periodic, "cv_range": (cv_min, cv_max)}
