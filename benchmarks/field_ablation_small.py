"""Field ablation on a small real system: does the MM field input pay off when the environment varies?

QM water (HF/STO-3G, PySCF electrostatic embedding) in two TIP3P point-charge waters placed at
random. Two ensembles with identical data, settings and seeds, with and without the field input,
are evaluated on frames from a separate draw (own seed) never trained on. Prints MAEs and ratios,
writes JSON. Usage: OMP_NUM_THREADS=1 python benchmarks/field_ablation_small.py [--quick] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from mlmm.config import section_with_defaults  # noqa: E402
from mlmm.model.baseline import write_delta_db  # noqa: E402
from mlmm.model.ensemble import Ensemble  # noqa: E402
from mlmm.model.train import train_member  # noqa: E402
from mlmm.settings import TrainingSettings  # noqa: E402
from test_delta import write_labels_db  # noqa: E402
from test_training import water_in_charges  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few frames and epochs (smoke test)")
    parser.add_argument("--out", default="benchmarks/results/field_ablation_small.json")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--delta", choices=["none", "xtb"], default="none",
                        help="train on reference − GFN2-xTB(point charges) (errors equal those of the total)")
    args = parser.parse_args()
    n_train, n_test, epochs, members = (12, 4, 2, 1) if args.quick else (80, 30, args.epochs, 2)
    settings = TrainingSettings.from_dict(section_with_defaults("training", {
        "n_atom_basis": 32, "n_interactions": 2, "n_rbf": 16, "cutoff": 4.0,
        "lr": 1.0e-3, "batch_size": 8, "max_epochs": epochs, "patience": 50,
        "val_fraction": 0.15, "mm_forces_weight": 10.0,
    }))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_labels_db(root / "train.db", [water_in_charges(rng) for rng in [np.random.default_rng(1)] for _ in range(n_train)])
        rng = np.random.default_rng(2)  # a separate draw: different positions of the point charges
        write_labels_db(root / "heldout.db", [water_in_charges(rng) for _ in range(n_test)])
        train_db, heldout_db = root / "train.db", root / "heldout.db"
        if args.delta != "none":
            write_delta_db(str(train_db), str(root / "train_delta.db"), args.delta)
            write_delta_db(str(heldout_db), str(root / "heldout_delta.db"), args.delta)
            train_db, heldout_db = root / "train_delta.db", root / "heldout_delta.db"
        result = {"n_train": n_train, "n_heldout": n_test, "epochs": epochs, "members": members, "delta": args.delta,
                  "units": {"energy": "eV", "force": "eV/Ang"}}
        for name, use_field in (("with_field", True), ("without_field", False)):
            paths = []
            for m in range(members):
                path = root / f"{name}{m}.pt"
                train_member([str(train_db)], str(path), seed=m, log_dir=str(root / f"log_{name}{m}"), num_threads=1,
                             settings=replace(settings, use_field=use_field, delta=args.delta))
                paths.append(path)
            r = Ensemble.load(paths, "cpu").evaluate_db(heldout_db)
            result[name] = {k: r[k] for k in ("energy_mae", "force_mae_qm", "force_mae_mm")}
    result["ratio_without_over_with"] = {
        k: result["without_field"][k] / result["with_field"][k] for k in result["with_field"]
    }
    result["seconds"] = time.perf_counter() - t0
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
