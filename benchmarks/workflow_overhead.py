"""Workflow overhead: ``snakemake -n`` time on the demo, no-op rerun time, demo wall time.

* ``dry_run``: ``snakemake -n`` on config/config.yaml (the DAG of a fresh run: parse, schema
  validation, job planning) in a new temporary directory holding only that config and a link to
  data/, so that a run made in this checkout cannot change it; wall time and planned job count;
* ``noop_rerun``: ``snakemake -n --nolock`` in a finished run's directory (``--run-dir``, which holds
  config/config.yaml, results/, .snakemake/): time to decide what is up to date, and the number of
  jobs it would still run (0 when the finished run matches this checkout's code and config);
  ``noop_rerun_mtime``: the same with ``--rerun-triggers mtime`` (only file times decide);
* ``demo_wall``: from the finished run's Snakemake log (first and last ``[timestamp]`` of
  ``--run-log``) and the per-job benchmark TSVs under results/benchmarks/ (wall s summed per rule
  group; summed CPU seconds), i.e. where the demo's time goes.

``--quick``: the dry run only when no finished run is given/found. Writes JSON + prints a table.
Usage: python benchmarks/workflow_overhead.py [--run-dir /tmp/demo1] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def snakemake_exe() -> str:
    """The snakemake next to this Python (the project venv), else the one on PATH."""
    local = Path(sys.executable).with_name("snakemake")
    return str(local) if local.exists() else "snakemake"


def timed_dry_run(workdir: Path, configfile: Path, extra: tuple[str, ...] = ()) -> dict:
    """Wall time (s) and planned job count of ``snakemake -n`` in ``workdir``."""
    cmd = [snakemake_exe(), "-n", "--nolock", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "1", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    text = proc.stdout + proc.stderr
    m = re.search(r"^total\s+(\d+)", text, re.M)
    jobs = int(m.group(1)) if m else (0 if "Nothing to be done" in text else None)
    return {"wall_s": wall, "jobs": jobs, "command": " ".join(cmd), "workdir": str(workdir)}


def fresh_dry_run(configfile: Path) -> dict:
    """:func:`timed_dry_run` of ``configfile`` in an empty temporary directory (data/ linked in)."""
    with tempfile.TemporaryDirectory(prefix="mlmm_dry_run_") as tmp:
        work = Path(tmp)
        (work / "config").mkdir()
        (work / "config" / "config.yaml").write_bytes(configfile.read_bytes())
        (work / "data").symlink_to(ROOT / "data")
        return timed_dry_run(work, work / "config" / "config.yaml")


def log_wall(run_log: Path) -> dict:
    """First/last ``[Day Mon dd HH:MM:SS yyyy]`` stamps of a Snakemake log and their span (s)."""
    stamps = [datetime.strptime(m, "%a %b %d %H:%M:%S %Y")
              for m in re.findall(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", run_log.read_text(), re.M)]
    if not stamps:
        raise ValueError(f"{run_log}: no Snakemake timestamps")
    return {"start": stamps[0].isoformat(), "end": stamps[-1].isoformat(), "wall_s": (stamps[-1] - stamps[0]).total_seconds()}


def benchmark_tsvs(bench_dir: Path) -> dict:
    """Per rule group (first folder under results/benchmarks): jobs, summed wall s, summed CPU s."""
    groups: dict[str, dict] = {}
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        group = tsv.relative_to(bench_dir).parts[0] if len(tsv.relative_to(bench_dir).parts) > 1 else tsv.stem
        with tsv.open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        g = groups.setdefault(group, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0})
        for row in rows:
            g["jobs"] += 1
            g["wall_s"] += float(row["s"])
            g["cpu_s"] += float(row.get("cpu_time") or 0.0)
    return groups


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--run-dir", default=None, help="finished run directory (config/config.yaml, results/, run log)")
    parser.add_argument("--run-log", default=None, help="Snakemake log of that run (default RUN_DIR/run.log)")
    parser.add_argument("--quick", action="store_true", help="dry run only unless --run-dir is given (smoke test)")
    parser.add_argument("--out", default="benchmarks/results/workflow_overhead.json")
    args = parser.parse_args(argv)

    result: dict = {"quick": args.quick, "dry_run": fresh_dry_run(Path(args.config).resolve())}
    if args.run_dir:
        run = Path(args.run_dir).resolve()
        result["run_dir"] = str(run)
        result["noop_rerun"] = timed_dry_run(run, run / "config" / "config.yaml")
        # only file times decide (code/params/input-set changes since that run are ignored)
        result["noop_rerun_mtime"] = timed_dry_run(run, run / "config" / "config.yaml", ("--rerun-triggers", "mtime"))
        log = Path(args.run_log) if args.run_log else run / "run.log"
        if log.exists():
            result["demo_wall"] = log_wall(log)
        bench = run / "results" / "benchmarks"
        if bench.is_dir():
            result["benchmark_tsvs"] = benchmark_tsvs(bench)

    print(f"snakemake -n (demo, fresh):   {result['dry_run']['wall_s']:.1f} s, {result['dry_run']['jobs']} jobs")
    if "noop_rerun" in result:
        print(f"snakemake -n (finished run):  {result['noop_rerun']['wall_s']:.1f} s, {result['noop_rerun']['jobs']} jobs to run")
        print(f"  same, --rerun-triggers mtime: {result['noop_rerun_mtime']['wall_s']:.1f} s, "
              f"{result['noop_rerun_mtime']['jobs']} jobs to run")
    if "demo_wall" in result:
        print(f"demo wall time (log):         {result['demo_wall']['wall_s'] / 60:.1f} min")
    if "benchmark_tsvs" in result:
        print(f"{'rule group':<14}{'jobs':>6}{'wall s':>10}{'cpu s':>10}")
        for g, rec in sorted(result["benchmark_tsvs"].items(), key=lambda kv: -kv[1]["wall_s"]):
            print(f"{g:<14}{rec['jobs']:>6}{rec['wall_s']:>10.1f}{rec['cpu_s']:>10.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
