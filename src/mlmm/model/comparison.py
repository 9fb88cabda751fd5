"""The competition with semi-empirical QM/MM: GFN2-xTB/MM and the MLP/MM against the reference.

On every frame of the fixed test set (PySCF labels in electrostatic embedding) both QM terms are
evaluated in the same embedding as the labels: GFN2-xTB of the QM region in the weighted MM
point charges (the ``xtb`` program, :func:`mlmm.potentials.baseline_term`) and the committee mean
of the trained members (:func:`mlmm.potentials.ensemble_term`, with the Δ baseline added back for
members trained on corrections). Errors:

* energy: MAE after removing each method's mean offset over the set (``energy_mae_offset_free``;
  absolute xTB and HF/DFT energies have different zeros, so only relative energies compare) and
  that mean offset (``energy_mean_offset``), eV;
* forces: mean absolute error over Cartesian components, on QM atoms and on MM sites, eV/Å;
* cost: median wall time of one QM-term call (energy + forces on QM atoms and MM sites) on the
  first test frame, ms, single thread. The MM force field of an MD step is the same for both
  methods and not included (``benchmarks/step_cost.py`` times whole MD steps).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from ase import Atoms

from mlmm.records import Record, nested
from mlmm.settings import TrainingSettings

log = logging.getLogger(__name__)


@dataclass
class MethodErrors(Record):
    """One QM/MM method on the test set (eV, eV/Å, ms); None without frames (MM: without MM sites)."""

    method: str
    energy_mae_offset_free: float | None
    energy_mean_offset: float | None
    force_mae_qm: float | None
    force_mae_mm: float | None
    ms_per_call: float | None


@dataclass
class SemiempiricalComparison(Record):
    """``models/semiempirical_comparison.json``: GFN2-xTB/MM and MLP/MM against the reference labels
    of the fixed test set; ``xtb_over_mlp_cost`` = xTB ms per call / MLP ms per call."""

    n_frames: int
    test_set: str
    reference_level: dict[str, Any]
    methods: list[MethodErrors] = nested(MethodErrors)
    xtb_over_mlp_cost: float | None = None
    units: dict[str, str] | None = None


def method_errors(method: str, term: Any, frames: Sequence[Atoms], n_timing: int) -> MethodErrors:
    """Errors of the QM term ``term`` (``compute(frame)`` → energy eV, forces eV/Å) on labelled ``frames``."""
    de, qm_err, mm_err = [], [], []
    for frame in frames:
        out = term.compute(frame)
        mask = np.asarray(frame.arrays["qm_mask"], bool)
        diff = np.asarray(out["forces"], float) - np.asarray(frame.get_forces(), float)
        de.append(float(out["energy"]) - float(frame.get_potential_energy()))
        qm_err.append(np.abs(diff[mask]).ravel())
        mm_err.append(np.abs(diff[~mask]).ravel())
    de_arr = np.array(de)
    mm = np.concatenate(mm_err) if mm_err else np.zeros(0)
    return MethodErrors(
        method=method,
        energy_mae_offset_free=float(np.abs(de_arr - de_arr.mean()).mean()) if len(de_arr) else None,
        energy_mean_offset=float(de_arr.mean()) if len(de_arr) else None,
        force_mae_qm=float(np.concatenate(qm_err).mean()) if qm_err else None,
        force_mae_mm=float(mm.mean()) if mm.size else None,
        ms_per_call=median_ms(lambda: term.compute(frames[0]), n_timing) if frames else None,
    )


def median_ms(call: Callable[[], Any], n: int) -> float:
    """Median wall time of ``call()`` over ``n`` calls after one warm-up call (ms)."""
    call()
    times = []
    for _ in range(max(1, n)):
        t0 = time.perf_counter()
        call()
        times.append(1e3 * (time.perf_counter() - t0))
    return float(np.median(times))


def compare_with_semiempirical(models: Sequence[str], test_db: str, training: TrainingSettings,
                               n_timing: int = 10) -> SemiempiricalComparison:
    """GFN2-xTB/MM and the MLP/MM committee of ``models`` against the labels of ``test_db`` (the
    plain reference labels, not Δ corrections); members run on ``training.device``."""
    from mlmm.labeling.db import db_level, read_labelled_frames
    from mlmm.model.ensemble import Ensemble
    from mlmm.potentials import baseline_term, ensemble_term

    frames = list(read_labelled_frames(test_db))
    if db_level(test_db) and db_level(test_db).get("delta"):
        raise ValueError(f"{test_db}: holds Δ corrections; compare against the reference labels DB")
    methods = [
        method_errors("GFN2-xTB/MM (xtb, point charges)", baseline_term("xtb"), frames, n_timing),
        method_errors("MLP/MM (committee mean)", ensemble_term(Ensemble.load_for(list(models), training.device)),
                      frames, n_timing),
    ]
    xtb, mlp = methods[0].ms_per_call, methods[1].ms_per_call
    result = SemiempiricalComparison(
        n_frames=len(frames), test_set=str(test_db), reference_level=db_level(test_db) or {}, methods=methods,
        xtb_over_mlp_cost=xtb / mlp if xtb and mlp else None,
        units={"energy": "eV", "force": "eV/Ang", "time": "ms"},
    )
    log.info("semi-empirical comparison: %s", result.to_dict())
    return result
