"""Committee size vs the calibration it buys, on a finished run's fixed test set.

Input: a finished run directory (``--run-dir``) with its labels results/labels/it*/labels.db and its
fixed test set results/test_set/labels.db. ``--members`` fresh members (the run's training
settings, seeds 0..M-1, no warm start, 1 thread) train on all the run's labels. For each committee
size N in ``--sizes``, up to ``--subsets`` committees of N of those members (all when there are
fewer) are scored on the test set with the workflow's own definitions: σ (the ensemble force
uncertainty) against the frame's max force error through :func:`mlmm.model.calibration.calibrate`
(Spearman ρ, out-of-fold coverage of the 90 % conformal bound, its half-width q) and the
committee's QM-force MAE. Prints mean ± std over the committees per N and writes JSON, so
``training.n_members`` can be chosen by the ρ and coverage it buys (the ensemble's cost grows
linearly with N).

``--quick``: 3 members of 3 epochs on the first 20 labels, sizes 2,3.
Usage: OMP_NUM_THREADS=1 python benchmarks/committee_size.py --run-dir /tmp/demo1
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def committees(n_members: int, size: int, cap: int, seed: int = 0) -> list[tuple[int, ...]]:
    """Up to ``cap`` distinct committees (member index tuples) of ``size`` out of ``n_members``."""
    every = list(itertools.combinations(range(n_members), size))
    return every if len(every) <= cap else sorted(random.Random(seed).sample(every, cap))


def score(paths: list[str], test_db: str) -> dict:
    """The committee's calibration and QM-force MAE on the fixed test set (workflow definitions)."""
    from mlmm.model.calibration import calibrate
    from mlmm.model.ensemble import Ensemble

    result = Ensemble.load(paths, "cpu").evaluate_db(test_db, return_arrays=True)
    cal = calibrate(result["sigma_force"], result["max_force_error"])
    return {"spearman_rho": cal.spearman_rho, "coverage_oof": cal.coverage_oof, "conformal_q": cal.conformal_q,
            "force_mae_qm": result["force_mae_qm"], "sigma_mean": float(np.mean(result["sigma_force"]))}


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and standard deviation (ddof 1; 0 for one value) of the values that are not None."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--members", type=int, default=6, help="members trained (the largest committee)")
    parser.add_argument("--sizes", default="2,3,4,6")
    parser.add_argument("--subsets", type=int, default=10, help="committees scored per size (at most)")
    parser.add_argument("--epochs", type=int, default=None, help="max epochs (default: the run's training.max_epochs)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", default="benchmarks/results/committee_size")
    parser.add_argument("--out", default="benchmarks/results/committee_size.json")
    args = parser.parse_args(argv)

    import torch

    from label_efficiency import run_labels, train_members
    from mlmm.labeling.db import db_level, iter_label_rows
    from mlmm.settings import TrainingSettings

    torch.set_num_threads(1)
    run, cfg, results, dbs = run_labels(args.run_dir)
    test_db = results / "test_set" / "labels.db"
    if not test_db.exists():
        sys.exit(f"{test_db}: no fixed test set in this run (run the workflow first)")
    rows = [row for db in dbs for row in iter_label_rows(db)]
    base = TrainingSettings.from_dict(cfg["training"])
    n_members, sizes, epochs = (3, [2, 3], 3) if args.quick else (
        args.members, [int(s) for s in args.sizes.split(",")], args.epochs or base.max_epochs)
    if args.quick:
        rows = rows[:20]
    if max(sizes) > n_members:
        sys.exit(f"--sizes {sizes}: the largest committee needs at most --members {n_members}")
    settings = replace(base, max_epochs=epochs, warm_start=False, delta="none")
    work = Path(args.workdir) / ("quick" if args.quick else "full")
    paths, train_s = train_members(rows, work, settings, db_level(dbs[0]), list(range(n_members)))
    print("training s per member: " + ", ".join(f"{t:.0f}" for t in train_s), flush=True)
    table = []
    for size in sizes:
        scored = [score([paths[i] for i in c], str(test_db)) for c in committees(n_members, size, args.subsets)]
        row = {"n_members": size, "n_committees": len(scored)}
        for key in ("spearman_rho", "coverage_oof", "conformal_q", "force_mae_qm", "sigma_mean"):
            row[key], row[f"{key}_std"] = mean_std([s[key] for s in scored])
        table.append(row)
    result = {"run_dir": str(run), "test_set": str(test_db), "n_labels": len(rows), "max_epochs": epochs,
              "representation": settings.representation, "train_s_per_member": train_s, "sizes": table,
              "quick": args.quick}
    print(f"\n{'N':>3}{'committees':>11}{'rho':>14}{'coverage':>16}{'q (eV/Å)':>16}{'F MAE QM':>16}")
    for r in table:
        cells = [f"{r[k]:.3f} ± {r[k + '_std']:.3f}" if r[k] is not None else "–"
                 for k in ("spearman_rho", "coverage_oof", "conformal_q", "force_mae_qm")]
        print(f"{r['n_members']:>3}{r['n_committees']:>11}" + "".join(f"{c:>16}" for c in cells))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
