"""Label efficiency: test-set force MAE vs number of labels — active learning vs plain MD vs metadynamics frames.

Input: a finished run directory (``--run-dir``, with config/config.yaml and results/labels/it*/
labels.db). Pools: its iteration-0 labels of sampler ``xtb_md`` (MD arm) and ``metadynamics``
(metaD arm, when the run sampled it), and its AL labels results/labels/it1…/labels.db in
iteration order. Other iteration-0 samplers are not used.

* Test set: the run's fixed test set results/test_set/labels.db (own xTB/MM trajectories at the
  production temperature and above plus metadynamics frames, never trained on; ``--test-db`` to
  name another). Runs without one: a NEW xTB/MM MD trajectory at ``--heldout-temperature``
  (default 450 K, seed 777), ``--heldout`` frames labelled here at the run's level, cached in
  ``--workdir``/heldout.db.
* Budget N, MD arm: N frames evenly spaced over the MD labels (trajectory order); metaD arm the
  same over the metadynamics labels; AL arm: the first ``--base`` frames of the MD arm (the AL
  run started from sampled labels) + the first N − base AL-selected labels in iteration order.
  An arm stops where its pool ends.
* Each subset trains ``--members`` fresh members per seed of ``--seeds`` (the run's training
  settings, ``--epochs`` max epochs, no warm start); per arm and budget the ensemble's test errors
  are reported as mean and standard deviation over the seeds, and the smallest AL budget whose
  mean QM-force MAE reaches the MD arm's largest-budget mean (target: ≤ half the MD labels).

``--quick``: budgets base/2·base with base 10, 1 member, 1 seed, 3 epochs (3 held-out frames when
the run has no test set). Writes JSON + prints a table.
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


def train_members(rows: list, out_dir: Path, settings, level: dict, seeds: list[int]) -> tuple[list[str], list[float]]:
    """Fresh members out_dir/member<m>.pt, one per seed, trained on ``rows`` (labelled frames, written
    to out_dir/train.db) with 1 thread; their paths and training seconds."""
    from mlmm.labeling.db import write_label_db
    from mlmm.model.train import train_member

    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / "train.db"
    write_label_db(db, rows, level)
    paths, seconds = [], []
    for m, seed in enumerate(seeds):
        path = out_dir / f"member{m}.pt"
        metrics = train_member([str(db)], str(path), seed=seed, settings=settings, log_dir=str(out_dir / f"log{m}"),
                               num_threads=1)
        paths.append(str(path))
        seconds.append(metrics.seconds)
    return paths, seconds


def train_and_score(rows: list, out_dir: Path, settings, level: dict, members: int, heldout_db: Path,
                    seed: int = 0) -> dict:
    """Train ``members`` members (seeds 100·seed + m) on ``rows`` (labelled frames) and score the
    ensemble on ``heldout_db``."""
    from mlmm.model.ensemble import Ensemble

    paths, seconds = train_members(rows, out_dir, settings, level, [100 * seed + m for m in range(members)])
    errors = Ensemble.load(paths, "cpu").evaluate_db(str(heldout_db))
    return {"n_labels": len(rows), "seed": seed, "force_mae_qm": errors["force_mae_qm"],
            "force_mae_mm": errors["force_mae_mm"], "energy_mae": errors["energy_mae"], "train_s": sum(seconds)}


def over_seeds(runs: list[dict]) -> dict:
    """Mean and standard deviation (ddof 1; 0 for one seed) of each error over the seeds' runs."""
    out: dict = {"n_labels": runs[0]["n_labels"], "seeds": [r["seed"] for r in runs]}
    for key in ("force_mae_qm", "force_mae_mm", "energy_mae"):
        values = np.array([r[key] for r in runs], float)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[f"{key}_per_seed"] = values.tolist()
    return out


def run_labels(run_dir: str | Path) -> tuple[Path, dict, Path, list[Path]]:
    """(run dir, its validated config, its results dir, results/labels/it*/labels.db in iteration order)."""
    from mlmm.config import load_config

    run = Path(run_dir).resolve()
    cfg = load_config(run / "config" / "config.yaml")
    results = run / cfg["results_dir"]
    dbs = sorted((results / "labels").glob("it*/labels.db"), key=lambda p: int(p.parent.name[2:]))
    if not dbs:
        sys.exit(f"{results / 'labels'}: no it*/labels.db (run the workflow first)")
    return run, cfg, results, dbs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="finished run (config/config.yaml, results/labels/it*/labels.db)")
    parser.add_argument("--budgets", default="20,40,60,80,150", help="label budgets (each arm capped at its pool)")
    parser.add_argument("--base", type=int, default=20, help="MD labels the AL arm starts from")
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--seeds", default="0,1,2", help="training seeds; errors are reported as mean ± std over them")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--test-db", default=None, help="test labels DB (default: the run's results/test_set/labels.db)")
    parser.add_argument("--heldout", type=int, default=20, help="held-out frames when the run has no test set")
    parser.add_argument("--heldout-temperature", type=float, default=450.0)
    parser.add_argument("--quick", action="store_true", help="2 budgets, 1 member, 1 seed, 3 epochs")
    parser.add_argument("--workdir", default="benchmarks/results/label_efficiency")
    parser.add_argument("--out", default="benchmarks/results/label_efficiency.json")
    args = parser.parse_args(argv)

    import torch

    from dataclasses import replace

    from mlmm.labeling.db import db_level, iter_label_rows
    from mlmm.settings import TrainingSettings

    torch.set_num_threads(1)
    run, cfg, results, it_dbs = run_labels(args.run_dir)
    it0 = list(iter_label_rows(it_dbs[0]))
    pools = {"md": [r for r in it0 if r[2].get("sampler") == "xtb_md"],
             "metad": [r for r in it0 if r[2].get("sampler") == "metadynamics"]}
    al_rows = [row for db in it_dbs[1:] for row in iter_label_rows(db)]
    level = db_level(it_dbs[0])

    if args.quick:
        base, budgets, members, seeds, epochs, n_held, stride, equil = 10, [10, 20], 1, [0], 3, 3, 5, 10
    else:
        base, members, epochs, n_held, stride, equil = args.base, args.members, args.epochs, args.heldout, 20, 100
        budgets = [int(b) for b in args.budgets.split(",")]
        seeds = [int(v) for v in args.seeds.split(",")]
    if len(pools["md"]) < base:
        sys.exit(f"{it_dbs[0]}: {len(pools['md'])} xtb_md labels, fewer than --base {base}")
    work = Path(args.workdir) / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    test_db = Path(args.test_db) if args.test_db else results / "test_set" / "labels.db"
    if test_db.exists():
        held = {"db": str(test_db), "n_frames": sum(1 for _ in iter_label_rows(test_db)), "kind": "the run's fixed test set"}
    else:
        test_db, held_rec_path = work / "heldout.db", work / "heldout.json"
        if test_db.exists() and held_rec_path.exists():
            held = json.loads(held_rec_path.read_text())
        else:
            held = make_heldout(cfg, run, level, test_db, n_frames=n_held, temperature_K=args.heldout_temperature,
                                stride=stride, equilibration=equil, seed=777)
            held["kind"] = f"new xTB/MM MD at {args.heldout_temperature:.0f} K"
            held_rec_path.write_text(json.dumps(held, indent=1))

    settings = replace(TrainingSettings.from_dict(cfg["training"]), max_epochs=epochs,
                       warm_start=False, delta="none")

    def spread(rows: list, n: int) -> list:
        return [rows[i] for i in np.linspace(0, len(rows) - 1, n).round().astype(int)] if n < len(rows) else list(rows)

    def score(rows: list, name: str) -> dict:
        return over_seeds([train_and_score(rows, work / f"{name}_seed{seed}", settings, level, members, test_db, seed)
                           for seed in seeds])

    base_rows = spread(pools["md"], base)  # == the MD arm at budget base
    arms: dict[str, list[dict]] = {"md": [], "metad": [], "al": []}
    for n in budgets:
        if n < base:
            continue
        for arm in ("md", "metad"):
            if 0 < n <= len(pools[arm]):
                arms[arm].append(score(spread(pools[arm], n), f"{arm}_{n}"))
        if n == base and arms["md"] and arms["md"][-1]["n_labels"] == n:
            arms["al"].append(dict(arms["md"][-1], same_as="md"))  # identical training set: no AL labels yet
        elif n - base <= len(al_rows):
            arms["al"].append(score(base_rows + al_rows[: n - base], f"al_{n}"))
        print(f"budget {n}: " + ", ".join(f"{a} {r[-1]['force_mae_qm']:.3f}" for a, r in arms.items() if r and r[-1]["n_labels"] == n),
              flush=True)

    reference = arms["md"][-1] if arms["md"] else None
    reached = [r["n_labels"] for r in arms["al"] if reference and r["force_mae_qm"] <= reference["force_mae_qm"]]
    summary = None
    if reference:
        summary = {"md_labels": reference["n_labels"], "md_force_mae_qm": reference["force_mae_qm"],
                   "al_labels_to_reach": min(reached) if reached else None,
                   "target_met": bool(reached and min(reached) <= reference["n_labels"] / 2)}
    result = {"run_dir": str(run), "test_set": held, "base_md_labels": base, "members": members, "seeds": seeds,
              "max_epochs": epochs, "n_available": {**{k: len(v) for k, v in pools.items()}, "al": len(al_rows)},
              "arms": arms, "summary": summary, "quick": args.quick}
    print(f"\ntest set: {held['n_frames']} frames ({held['kind']}), labelled {level}; mean ± std over seeds {seeds}")
    print(f"{'arm':<6}{'labels':>7}{'F MAE QM':>18}{'F MAE MM':>10}{'E MAE':>9}   (eV/Å, eV)")
    for arm, rows in arms.items():
        for r in rows:
            print(f"{arm:<6}{r['n_labels']:>7}{r['force_mae_qm']:>10.3f} ± {r['force_mae_qm_std']:.3f}"
                  f"{r['force_mae_mm']:>10.4f}{r['energy_mae']:>9.3f}")
    if summary:
        print(f"AL labels to reach MD@{summary['md_labels']} ({summary['md_force_mae_qm']:.3f} eV/Å): "
              f"{summary['al_labels_to_reach']} (target ≤ {summary['md_labels'] // 2}: {'met' if summary['target_met'] else 'NOT met'})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
