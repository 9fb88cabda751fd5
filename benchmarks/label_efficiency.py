"""Label efficiency: held-out force MAE vs number of labels, active learning vs plain-MD frames.

Input: a finished run directory (``--run-dir``, with config/config.yaml and results/labels/it*/
labels.db). Its iteration-0 labels must come from plain xTB/MM MD (sampler ``xtb_md``), as in a run
with only that sampler; the AL labels are results/labels/it1…/labels.db in iteration order.

* Held-out set (independent of both pools): a NEW xTB/MM MD trajectory at ``--heldout-temperature``
  (default 450 K, seed 777, from the structure's start), ``--heldout`` frames labelled here with
  PySCF at the level stored in the run's label DB. Cached in ``--workdir``/heldout.db.
* Budget N, MD arm: N frames evenly spaced over the iteration-0 MD labels (trajectory order).
* Budget N, AL arm: the first ``--base`` MD frames of the MD arm (evenly spaced, as the AL run
  started from MD labels) + the first N − base AL-selected labels in iteration order.
  The MD arm stops at the number of MD labels; the AL arm goes on to all AL labels.
* Each subset trains ``--members`` fresh members (the run's training settings, ``--epochs`` max
  epochs, no warm start, no internal test split); the ensemble's force MAE on QM atoms and MM sites
  and energy MAE on the held-out DB are reported, and the smallest AL budget reaching the MD arm's
  largest-budget QM force MAE (target: ≤ half the MD labels).

``--quick``: 3 held-out frames from a short trajectory, budgets base/2·base with base 10, 1 member,
3 epochs. Writes JSON + prints a table.
Usage: OMP_NUM_THREADS=1 python benchmarks/label_efficiency.py --run-dir /tmp/demo1 [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def make_heldout(cfg: dict, run_dir: Path, level_cfg: dict, out_db: Path, *, n_frames: int, temperature_K: float,
                 stride: int, equilibration: int, seed: int) -> dict:
    """Run the independent xTB/MM MD, label its frames with PySCF, write ``out_db``; returns a record."""
    from dataclasses import replace

    from mlmm.jobs import system_from_config
    from mlmm.settings import LevelSettings, SystemSettings, XtbMDSettings
    from mlmm.labeling.db import write_label_db
    from mlmm.labeling.ground_state import label_frames
    from mlmm.sampling.md_sampler import sample_xtb_md

    structure = Path(cfg["system"]["structure"])
    for base in (run_dir, ROOT):
        if not structure.is_absolute() and (base / structure).exists():
            structure = base / structure
            break
    system = system_from_config(str(structure), SystemSettings.from_dict(cfg["system"]))
    md = replace(XtbMDSettings.from_dict(cfg["sampling"]["xtb_md"]), n_frames=n_frames, stride=stride,
                 equilibration_steps=equilibration, temperature=temperature_K, seed=seed)
    t0 = time.perf_counter()
    frames = sample_xtb_md(system, md, SystemSettings.from_dict(cfg["system"]).embedding)
    t_md = time.perf_counter() - t0
    labelled, report = label_frames(frames, LevelSettings.from_dict(level_cfg), progress=False)
    write_label_db(out_db, labelled, level_cfg)
    return {"db": str(out_db), "n_frames": len(labelled), "temperature_K": temperature_K, "seed": seed,
            "stride": stride, "equilibration_steps": equilibration, "md_s": t_md,
            "label_s": float(sum(r["wall_s"] for r in report)), "level": level_cfg}


def train_and_score(rows: list, out_dir: Path, settings, level: dict, members: int, heldout_db: Path) -> dict:
    """Train ``members`` members on ``rows`` (labelled frames) and score the ensemble on ``heldout_db``."""
    from mlmm.labeling.db import write_label_db
    from mlmm.model.ensemble import Ensemble
    from mlmm.model.train import train_member

    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / "train.db"
    write_label_db(db, rows, level)
    paths, seconds = [], 0.0
    for m in range(members):
        path = out_dir / f"member{m}.pt"
        metrics = train_member([str(db)], str(path), seed=m, settings=settings, log_dir=str(out_dir / f"log{m}"),
                               num_threads=1)
        paths.append(str(path))
        seconds += metrics.seconds
    errors = Ensemble.load(paths, "cpu").evaluate_db(str(heldout_db))
    return {"n_labels": len(rows), "force_mae_qm": errors["force_mae_qm"], "force_mae_mm": errors["force_mae_mm"],
            "energy_mae": errors["energy_mae"], "train_s": seconds}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="finished run (config/config.yaml, results/labels/it*/labels.db)")
    parser.add_argument("--budgets", default="20,40,60,80,150", help="label budgets (AL arm capped at all AL labels)")
    parser.add_argument("--base", type=int, default=20, help="MD labels the AL arm starts from")
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--heldout", type=int, default=20, help="held-out frames")
    parser.add_argument("--heldout-temperature", type=float, default=450.0)
    parser.add_argument("--quick", action="store_true", help="tiny held-out set, 2 budgets, 1 member, 3 epochs")
    parser.add_argument("--workdir", default="benchmarks/results/label_efficiency")
    parser.add_argument("--out", default="benchmarks/results/label_efficiency.json")
    args = parser.parse_args(argv)

    import torch

    from dataclasses import replace

    from mlmm.config import load_config
    from mlmm.labeling.db import db_level, iter_label_rows
    from mlmm.settings import TrainingSettings

    torch.set_num_threads(1)
    run = Path(args.run_dir).resolve()
    cfg = load_config(run / "config" / "config.yaml")
    labels = run / cfg["results_dir"] / "labels"
    it_dbs = sorted(labels.glob("it*/labels.db"), key=lambda p: int(p.parent.name[2:]))
    if not it_dbs:
        sys.exit(f"{labels}: no it*/labels.db (run the workflow first)")
    md_rows = list(iter_label_rows(it_dbs[0]))
    samplers = {meta.get("sampler") for _, _, meta in md_rows}
    if samplers != {"xtb_md"}:
        sys.exit(f"{it_dbs[0]}: iteration-0 labels come from {sorted(samplers)}; this benchmark needs plain xtb_md labels")
    al_rows = [row for db in it_dbs[1:] for row in iter_label_rows(db)]
    level = db_level(it_dbs[0])

    if args.quick:
        base, budgets, members, epochs, n_held, stride, equil = 10, [10, 20], 1, 3, 3, 5, 10
    else:
        base, members, epochs, n_held, stride, equil = args.base, args.members, args.epochs, args.heldout, 20, 100
        budgets = [int(b) for b in args.budgets.split(",")]
    work = Path(args.workdir) / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    held_db = work / "heldout.db"
    held_rec_path = work / "heldout.json"
    if held_db.exists() and held_rec_path.exists():
        held = json.loads(held_rec_path.read_text())
    else:
        held = make_heldout(cfg, run, level, held_db, n_frames=n_held, temperature_K=args.heldout_temperature,
                            stride=stride, equilibration=equil, seed=777)
        held_rec_path.write_text(json.dumps(held, indent=1))

    settings = replace(TrainingSettings.from_dict(cfg["training"]), max_epochs=epochs,
                       warm_start=False, delta="none")

    def spread(rows: list, n: int) -> list:
        return [rows[i] for i in np.linspace(0, len(rows) - 1, n).round().astype(int)] if n < len(rows) else list(rows)

    base_rows = spread(md_rows, base)  # == the MD arm at budget base
    arms: dict[str, list[dict]] = {"md": [], "al": []}
    for n in budgets:
        if n < base:
            continue
        if n <= len(md_rows):
            arms["md"].append(train_and_score(spread(md_rows, n), work / f"md_{n}", settings, level, members, held_db))
        if n == base and arms["md"] and arms["md"][-1]["n_labels"] == n:
            arms["al"].append(dict(arms["md"][-1], same_as="md"))  # identical training set: no AL labels yet
        elif n - base <= len(al_rows):
            arms["al"].append(train_and_score(base_rows + al_rows[: n - base], work / f"al_{n}", settings, level, members, held_db))
        print(f"budget {n}: " + ", ".join(f"{a} {r[-1]['force_mae_qm']:.3f}" for a, r in arms.items() if r and r[-1]["n_labels"] == n),
              flush=True)

    reference = arms["md"][-1] if arms["md"] else None
    reached = [r["n_labels"] for r in arms["al"] if reference and r["force_mae_qm"] <= reference["force_mae_qm"]]
    summary = None
    if reference:
        summary = {"md_labels": reference["n_labels"], "md_force_mae_qm": reference["force_mae_qm"],
                   "al_labels_to_reach": min(reached) if reached else None,
                   "target_met": bool(reached and min(reached) <= reference["n_labels"] / 2)}
    result = {"run_dir": str(run), "heldout": held, "base_md_labels": base, "members": members, "max_epochs": epochs,
              "n_md_available": len(md_rows), "n_al_available": len(al_rows), "arms": arms, "summary": summary,
              "quick": args.quick}
    print(f"\nheld-out: {held['n_frames']} frames of xTB/MM MD at {held['temperature_K']:.0f} K, labelled {level}")
    print(f"{'arm':<5}{'labels':>8}{'F MAE QM':>10}{'F MAE MM':>10}{'E MAE':>9}   (eV/Å, eV)")
    for arm, rows in arms.items():
        for r in rows:
            print(f"{arm:<5}{r['n_labels']:>8}{r['force_mae_qm']:>10.3f}{r['force_mae_mm']:>10.3f}{r['energy_mae']:>9.3f}")
    if summary:
        print(f"AL labels to reach MD@{summary['md_labels']} ({summary['md_force_mae_qm']:.3f} eV/Å): "
              f"{summary['al_labels_to_reach']} (target ≤ {summary['md_labels'] // 2}: {'met' if summary['target_met'] else 'NOT met'})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
