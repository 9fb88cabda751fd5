"""Stability of MLP/MM MD: time to first σ breach / blow-up, iteration-0 model vs final model.

Reads a finished results directory (default ``results/``):

* ``production/stability.json`` (production stage): per model (``initial`` = iteration-0 ensemble,
  ``final`` = last AL ensemble) and replica, the simulated length, the time of the first
  ``sigma_stop`` breach (null = none) and the stop reason (σ breach, force blow-up, …);
* ``al/it*/walker*.json``: the AL walkers of iteration k run the models of iteration k-1, so they
  give the same measurement for every intermediate model (time run, breach, ms per step).

Nothing is simulated here: the numbers are those of the run that produced the directory, so
``--quick`` only differs in printing less. Writes JSON + prints tables.
Usage: python benchmarks/stability.py [--results /tmp/demo1/results] [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np


def production_summary(stability: dict) -> dict:
    """Per model: replicas, completed, time to first breach (ps; run length when none) and reasons."""
    out = {}
    for model, rec in stability.items():
        lengths = np.asarray(rec["length_ps"], float)
        first = [b for b in rec["first_sigma_exceeded_ps"]]
        reasons = rec.get("stop_reason", [None] * len(lengths))
        blowups = [r for r in reasons if r and not r.startswith("sigma breach")]
        out[model] = {
            "replicas": int(rec["replicas"]),
            "completed": int(rec["completed"]),
            "length_ps": lengths.tolist(),
            "first_sigma_breach_ps": first,
            "breaches": int(sum(b is not None for b in first)),
            "blowups": len(blowups),
            "min_time_to_breach_ps": min([float(b) for b in first if b is not None], default=None),
            "total_breach_free_ps": float(sum(b if b is not None else length for b, length in zip(first, lengths))),
            "sigma_mean": rec.get("sigma_mean"),
            "stop_reason": reasons,
        }
    return out


def walker_summary(results: Path) -> list[dict]:
    """Per AL iteration k (models of iteration k-1): walkers, breaches, mean/min time run (ps)."""
    rows = []
    for it_dir in sorted((results / "al").glob("it*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        walkers = [json.loads(p.read_text()) for p in sorted(it_dir.glob("walker*.json"))]
        walkers = [w for w in walkers if not w.get("skipped")]
        if not walkers:
            continue
        times = np.array([w["time_ps"] for w in walkers], float)
        rows.append({
            "al_iteration": int(re.sub(r"\D", "", it_dir.name)),
            "model_iteration": int(re.sub(r"\D", "", it_dir.name)) - 1,
            "walkers": len(walkers),
            "breaches": int(sum(bool(w.get("breach")) for w in walkers)),
            "mean_time_ps": float(times.mean()),
            "min_time_ps": float(times.min()),
            "requested_ps": float(np.mean([w["steps_requested"] * w["time_ps"] / max(w["steps_done"], 1) for w in walkers])),
            "ms_per_step": float(np.mean(ms)) if (ms := [w["ms_per_step"] for w in walkers if w.get("ms_per_step")]) else None,
        })
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results")
    parser.add_argument("--quick", action="store_true", help="same numbers, shorter printout (smoke test)")
    parser.add_argument("--out", default="benchmarks/results/stability.json")
    args = parser.parse_args(argv)
    results = Path(args.results)
    stab_path = results / "production" / "stability.json"
    if not stab_path.exists():
        sys.exit(f"{stab_path}: not found (run the workflow first, or pass --results DIR of a finished run)")
    prod = production_summary(json.loads(stab_path.read_text()))
    walkers = walker_summary(results)
    result = {"results_dir": str(results.resolve()), "production": prod, "al_walkers": walkers, "quick": args.quick}

    print(f"{'model':<10}{'replicas':>9}{'breaches':>9}{'blow-ups':>9}{'first breach ps':>18}{'breach-free ps':>16}")
    for model, rec in prod.items():
        first = ", ".join("none" if b is None else f"{b:.3f}" for b in rec["first_sigma_breach_ps"])
        print(f"{model:<10}{rec['replicas']:>9}{rec['breaches']:>9}{rec['blowups']:>9}{first:>18}{rec['total_breach_free_ps']:>16.3f}")
    if walkers and not args.quick:
        print(f"\n{'AL it':>6}{'model it':>9}{'walkers':>8}{'breaches':>9}{'mean ps':>9}{'min ps':>8}{'of ps':>7}{'ms/step':>9}")
        for r in walkers:
            print(f"{r['al_iteration']:>6}{r['model_iteration']:>9}{r['walkers']:>8}{r['breaches']:>9}"
                  f"{r['mean_time_ps']:>9.3f}{r['min_time_ps']:>8.3f}{r['requested_ps']:>7.2f}{r['ms_per_step'] or float('nan'):>9.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, allow_nan=False))
    return result


if __name__ == "__main__":
    main()
