#!/usr/bin/env python
"""Seed replicas of a run, identity of two runs, and the spread of the key numbers over seeds.

  prepare   CONFIG REPLICA OUT    write CONFIG (defaults filled in) with every seed + REPLICA × 1 000 000 and
                                  results_dir <results_dir>_seed<REPLICA> (run it with --configfile OUT)
  compare   SUMMARY_A SUMMARY_B   are two runs' summary.json identical (all but wall times)?
  summarize OUT.json SUMMARY...   key numbers of each run with mean, std and range over the runs

See src/mlmm/report/spread.py; README "What the demo gave" quotes `summarize` of the demo.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from mlmm.config import load_config
from mlmm.report.spread import SEED_OFFSET, key_numbers, offset_seeds, spread, summary_differences


def prepare(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # defaults filled in: seeds left at their default shift too
    out = offset_seeds(config, SEED_OFFSET * args.replica)
    out["results_dir"] = f"{config.get('results_dir', 'results')}_seed{args.replica}"
    Path(args.out).write_text(
        f"# {args.config} with every seed + {SEED_OFFSET * args.replica} (tools/seed_spread.py prepare)\n"
        + yaml.safe_dump(out, sort_keys=False, allow_unicode=True)
    )
    print(f"{args.out}: results_dir {out['results_dir']}")
    return 0


def compare(args: argparse.Namespace) -> int:
    a, b = (json.loads(Path(p).read_text()) for p in (args.a, args.b))
    n, differ = summary_differences(a, b)
    if differ:
        print(f"{len(differ)} of {n} numbers differ, e.g.:")
        for key, val in list(differ.items())[:20]:
            print(f"  {key}: {val}")
        return 1
    print(f"identical: all {n} numbers (wall times left out) and every other entry")
    return 0


def summarize(args: argparse.Namespace) -> int:
    runs = [key_numbers(json.loads(Path(p).read_text())) for p in args.summaries]
    table = spread(runs)
    Path(args.out).write_text(json.dumps({"runs": args.summaries, "key_numbers": table}, indent=1) + "\n")
    print(f"{'key number':52s} {'mean':>10s} {'std':>10s} {'min':>10s} {'max':>10s}  n")
    fmt = lambda v: f"{v:10.4g}" if v is not None else f"{'-':>10s}"  # noqa: E731
    for label, s in table.items():
        print(f"{label:52s} {fmt(s['mean'])} {fmt(s['std'])} {fmt(s['min'])} {fmt(s['max'])}  {s['n']}")
    print(f"written {args.out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("config")
    p.add_argument("replica", type=int)
    p.add_argument("out")
    p.set_defaults(run=prepare)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.set_defaults(run=compare)
    s = sub.add_parser("summarize")
    s.add_argument("out")
    s.add_argument("summaries", nargs="+")
    s.set_defaults(run=summarize)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
