"""Learning curves per representation: fixed-test-set force MAE vs labels for SchNet and PaiNN.

Input: a finished run directory (``--run-dir``) with its labels results/labels/it*/labels.db and its
fixed test set results/test_set/labels.db. For each budget N the first N labels in iteration order
(the run's own AL data) train ``--members`` fresh members per representation with the run's training
settings (``--epochs`` max epochs, no warm start, 1 thread); the ensembles are scored on the test
set. Prints a table and writes JSON (errors, training seconds, parameter counts), so the default
representation can be chosen by test error at a training cost a 2-core CI carries.

``--quick``: budgets 10/20, 1 member, 3 epochs.
Usage: OMP_NUM_THREADS=1 python benchmarks/representation_curves.py --run-dir /tmp/demo1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _label_efficiency():
    """The sibling benchmark whose train_and_score this one shares."""
    spec = importlib.util.spec_from_file_location("label_efficiency", Path(__file__).with_name("label_efficiency.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--representations", default="schnet,painn")
    parser.add_argument("--budgets", default="90,240", help="labels (first N in iteration order)")
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", default="benchmarks/results/representation_curves")
    parser.add_argument("--out", default="benchmarks/results/representation_curves.json")
    args = parser.parse_args(argv)

    import torch

    from mlmm.labeling.db import db_level, iter_label_rows
    from mlmm.model.ensemble import load_model
    from mlmm.settings import TrainingSettings

    torch.set_num_threads(1)
    label_efficiency = _label_efficiency()
    run, cfg, results, dbs = label_efficiency.run_labels(args.run_dir)
    test_db = results / "test_set" / "labels.db"
    if not test_db.exists():
        sys.exit(f"{test_db}: no fixed test set in this run (run the workflow first)")
    rows = [row for db in dbs for row in iter_label_rows(db)]
    level = db_level(dbs[0])
    budgets, members, epochs = ([10, 20], 1, 3) if args.quick else (
        [int(b) for b in args.budgets.split(",")], args.members, args.epochs)
    work = Path(args.workdir) / ("quick" if args.quick else "full")
    train_and_score = label_efficiency.train_and_score
    base = replace(TrainingSettings.from_dict(cfg["training"]), max_epochs=epochs, warm_start=False, delta="none")
    curves: dict[str, list[dict]] = {}
    for rep in args.representations.split(","):
        settings = replace(base, representation=rep)
        curves[rep] = []
        for n in budgets:
            if n > len(rows):
                continue
            point = train_and_score(rows[:n], work / f"{rep}_{n}", settings, level, members, test_db)
            point["n_parameters"] = sum(p.numel() for p in load_model(work / f"{rep}_{n}" / "member0.pt", "cpu").parameters())
            curves[rep].append(point)
            print(f"{rep} {n} labels: QM-force MAE {point['force_mae_qm']:.3f} eV/Å, {point['train_s']:.0f} s", flush=True)
    result = {"run_dir": str(run), "test_set": str(test_db), "members": members, "max_epochs": epochs,
              "n_labels_available": len(rows), "curves": curves, "quick": args.quick}
    print(f"\n{'representation':<15}{'labels':>7}{'F MAE QM':>10}{'F MAE MM':>10}{'E MAE':>8}{'train s':>9}{'params':>8}")
    for rep, points in curves.items():
        for p in points:
            print(f"{rep:<15}{p['n_labels']:>7}{p['force_mae_qm']:>10.3f}{p['force_mae_mm']:>10.4f}{p['energy_mae']:>8.3f}"
                  f"{p['train_s']:>9.0f}{p['n_parameters']:>8}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
