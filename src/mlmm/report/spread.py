"""Run-to-run comparison of ``summary.json``: identity of two runs and the spread over seeds.

MD is chaotic: on one machine a config reproduces its numbers bit for bit, but any change of a
seed (or of the CPU) gives other frames, models and numbers. To tell a real difference from this
noise, the demo is run with every seed of the config shifted by the same offset
(:func:`offset_seeds`) and the key numbers of the README (:data:`KEY_NUMBERS`) are reported with
their mean, standard deviation and range over the runs (:func:`spread`). ``tools/seed_spread.py``
is the command line.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any, Callable, Mapping, Sequence

#: Seed offset between replicas: larger than every stream offset and iteration/index term of
#: :func:`mlmm.seeds.derive_seed`, so no replica reuses another replica's seeds.
SEED_OFFSET: int = 1_000_000

#: summary keys that are wall-clock timings or ratios of them, not results (they differ between any two runs).
TIMING = re.compile(r"(^|_)(wall|seconds|ms_per_step|ms_per_call|cost)(_|$)|_s$")


def without_timings(obj: Any) -> Any:
    """``obj`` (parsed JSON) with every timing entry (key matching :data:`TIMING`) removed."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if not TIMING.search(k)}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def numbers(obj: Any, path: str = "") -> dict[str, float]:
    """Every numeric leaf of ``obj`` by its JSON path (booleans excluded)."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in numbers(val, f"{path}.{key}").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in numbers(val, f"{path}[{i}]").items()}
    return {path: obj} if isinstance(obj, (int, float)) and not isinstance(obj, bool) else {}


def summary_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """(numbers compared, differences) of two summaries, timings left out.

    A difference is a numeric leaf with another value (``path: (a, b)``), a leaf only one side has
    (``path: "only in a"``), or any other entry (string, flag, list length) that differs
    (``"<non-numeric>": True``).
    """
    a, b = without_timings(dict(a)), without_timings(dict(b))
    na, nb = numbers(a), numbers(b)
    differ: dict[str, Any] = {k: (na[k], nb[k]) for k in na.keys() & nb.keys() if na[k] != nb[k]}
    differ.update({k: "only in a" for k in na.keys() - nb.keys()})
    differ.update({k: "only in b" for k in nb.keys() - na.keys()})
    if not differ and a != b:
        differ["<non-numeric>"] = True
    return len(na), differ


def offset_seeds(config: Mapping[str, Any], offset: int) -> dict[str, Any]:
    """A deep copy of ``config`` with every ``seed`` entry, at any depth, increased by ``offset``."""

    def shift(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: (v + offset if k == "seed" and isinstance(v, int) and not isinstance(v, bool) else shift(v))
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [shift(v) for v in obj]
        return obj

    return shift(copy.deepcopy(dict(config)))


def _path(*keys: str | int) -> Callable[[Mapping[str, Any]], float | None]:
    """Getter of the value at ``keys`` (None where any key is missing)."""

    def get(summary: Mapping[str, Any]) -> float | None:
        obj: Any = summary
        for key in keys:
            try:
                obj = obj[key]
            except (KeyError, IndexError, TypeError):
                return None
        return None if obj is None else float(obj)

    return get


def _count(*keys: str) -> Callable[[Mapping[str, Any]], float | None]:
    """Getter of the number of non-null entries of the list at ``keys``."""

    def get(summary: Mapping[str, Any]) -> float | None:
        obj: Any = summary
        for key in keys:
            if not isinstance(obj, Mapping) or key not in obj:
                return None
            obj = obj[key]
        return float(sum(v is not None for v in obj))

    return get


_SEP, _WITH, _WITHOUT = "test_set", ("field_ablation", "with_field"), ("field_ablation", "without_field")

#: The README's key numbers: label (with unit) -> getter on a parsed summary.json.
KEY_NUMBERS: dict[str, Callable[[Mapping[str, Any]], float | None]] = {
    "labels_total": _path("labels_total"),
    "test frames (final)": _path("test_errors_final", "n_test"),
    "test energy MAE it0 (eV)": _path("test_errors_per_iteration", 0, "energy_mae"),
    "test QM-force MAE it0 (eV/Å)": _path("test_errors_per_iteration", 0, "force_mae_qm"),
    "test energy MAE final (eV)": _path("test_errors_final", "energy_mae"),
    "test QM-force MAE final (eV/Å)": _path("test_errors_final", "force_mae_qm"),
    "test MM-force MAE final (eV/Å)": _path("test_errors_final", "force_mae_mm"),
    "explored frames below sigma_lo, last iteration": _path("selection_per_iteration", -1, "fraction_accurate"),
    "ablation energy MAE with field (eV)": _path(*_WITH, _SEP, "energy_mae"),
    "ablation energy MAE without field (eV)": _path(*_WITHOUT, _SEP, "energy_mae"),
    "ablation QM-force MAE with field (eV/Å)": _path(*_WITH, _SEP, "force_mae_qm"),
    "ablation QM-force MAE without field (eV/Å)": _path(*_WITHOUT, _SEP, "force_mae_qm"),
    "ablation MM-force MAE with field (eV/Å)": _path(*_WITH, _SEP, "force_mae_mm"),
    "ablation MM-force MAE without field (eV/Å)": _path(*_WITHOUT, _SEP, "force_mae_mm"),
    "environment scan: model binding at closest (eV)": _path(
        "field_ablation", "environment_scan", "models", "with_field", "closest_ev"),
    "environment scan: HF binding at closest (eV)": _path("field_ablation", "environment_scan", "reference_closest_ev"),
    "production replicas without breach (final)": _path("production", "replicas_completed_without_breach"),
    "production first breach, iteration-0 ensemble (ps)": _path(
        "production_stability", "initial", "first_sigma_exceeded_ps", 0),
    "NVE drift (eV/atom/ps)": _path("production", "nve", "drift_eV_per_atom_per_ps"),
    "NVE RMS fluctuation (eV)": _path("production", "nve", "rms_fluctuation_eV"),
    "RDF first peak (Å)": _path("production", "rdf", "first_peak_ang"),
    "RDF coordination number": _path("production", "rdf", "coordination_number"),
    "calibration Spearman rho": _path("calibration", "spearman_rho"),
    "calibration scale": _path("calibration", "scale"),
    "metaD free-energy span (kJ/mol)": _path("metadynamics", "free_energy_span_kJ_mol"),
}


def key_numbers(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The :data:`KEY_NUMBERS` of one run (None where the run has no such entry)."""
    return {label: get(summary) for label, get in KEY_NUMBERS.items()}


def spread(runs: Sequence[Mapping[str, float | None]]) -> dict[str, dict[str, Any]]:
    """Mean, sample standard deviation, min and max of each key number over ``runs``.

    ``values`` lists every run's value (None where a run lacks it); the statistics use the runs
    that have it (``n``); the standard deviation is None for fewer than two.
    """
    out: dict[str, dict[str, Any]] = {}
    for label in runs[0] if runs else {}:
        values = [run.get(label) for run in runs]
        have = [v for v in values if v is not None]
        mean = sum(have) / len(have) if have else None
        std = math.sqrt(sum((v - mean) ** 2 for v in have) / (len(have) - 1)) if len(have) > 1 else None
        out[label] = {"n": len(have), "mean": mean, "std": std,
                      "min": min(have) if have else None, "max": max(have) if have else None, "values": values}
    return out
