"""Per-step cost of the MLP/MM calculator vs GFN2-xTB and PySCF HF/DFT on the same demo frames.

Frames: the demo system (config) with seeded 0.02 Å displacements, cut around the QM region
(``system.embedding_cutoff``). Timed per frame (wall clock, torch/BLAS threads as set by
OMP_NUM_THREADS):

* ``mlpmm_step``: one full MLP/MM force call (cut + ensemble + TIP3P/LJ force field), as in MD;
* ``ensemble`` / ``single_member``: the ML QM term alone (all members / one member);
* ``mm_forcefield``: the classical part alone;
* ``xtb_embedding``: GFN2-xTB in the MM point charges (xtb program), ``tblite_vacuum``: GFN2-xTB
  of the QM atoms only (tblite, in-process);
* ``pyscf_<method>``: PySCF QM/MM energy + forces (electrostatic embedding) at the labeling basis.

Ratios are QM-term time / ensemble time. Members are trained models (``--models``) or, without
them, untrained members with the config's architecture (identical cost). Prints a table, writes JSON.
Usage: OMP_NUM_THREADS=1 python benchmarks/step_cost.py [--quick] [--models m0.pt m1.pt ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _time(fn, repeats: int) -> float:
    """Mean wall time of ``fn()`` in ms after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1e3 * (time.perf_counter() - t0) / repeats


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--models", nargs="*", default=None, help="trained member files (default: untrained)")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per frame for the fast methods")
    parser.add_argument("--methods", default="hf,b3lyp", help="PySCF methods at the labeling basis")
    parser.add_argument("--quick", action="store_true", help="1 frame, few repeats, HF/STO-3G only (smoke test)")
    parser.add_argument("--out", default="benchmarks/results/step_cost.json")
    args = parser.parse_args(argv)

    import torch
    import yaml

    from mlmm.config import training_settings, validate_config
    from mlmm.engines.pyscf_qmmm import LevelOfTheory, qmmm_energy_forces
    from mlmm.engines.xtb import XTBEmbeddingTerm, XTBTerm
    from mlmm.jobs import system_from_config
    from mlmm.mm import MMForceField, QMMMCalculator, default_mm_cutoff
    from mlmm.model.ensemble import Ensemble
    from mlmm.model.nn import build_model

    torch.set_num_threads(1)
    cfg = validate_config(yaml.safe_load(Path(args.config).read_text()), source=args.config)
    structure = cfg["system"]["structure"]
    if not Path(structure).is_absolute() and not Path(structure).exists():
        structure = str(ROOT / structure)
    system = system_from_config(structure, cfg["system"])
    cutoff = cfg["system"]["embedding_cutoff"]
    n_frames, repeats = (1, 3) if args.quick else (args.frames, args.repeats)
    methods = ["hf"] if args.quick else [m for m in args.methods.split(",") if m]
    basis = "sto-3g" if args.quick else cfg["labeling"]["level"]["basis"]

    if args.models:
        ensemble = Ensemble.load(args.models)
    else:
        settings = training_settings(cfg["training"], 1)
        members = []
        for k in range(cfg["training"]["n_members"]):
            torch.manual_seed(k)
            members.append(build_model(settings).eval())
        ensemble = Ensemble(members)
    single = Ensemble(ensemble.models[:1])
    mm_ff = MMForceField(system, cutoff_ang=default_mm_cutoff(system))
    atoms = system.atoms.copy()
    atoms.calc = QMMMCalculator(system, ensemble, mm_ff, cutoff)

    rng = np.random.default_rng(0)
    positions = [system.atoms.positions + rng.normal(scale=0.02, size=system.atoms.positions.shape) for _ in range(n_frames)]
    frames = [system.cut_frame(p, cutoff, sampler="benchmark", iteration=0, source="step_cost", seed=0)[0] for p in positions]

    times: dict[str, list[float]] = {}

    def record(name: str, ms: float) -> None:
        times.setdefault(name, []).append(ms)

    def jittered(frame):
        """The frame with a 1e-6 Å displacement, so no calculator can return a cached result."""
        moved = frame.copy()
        moved.positions = moved.positions + 1e-6 * rng.normal(size=moved.positions.shape)
        return moved

    xtb_pc = XTBEmbeddingTerm() if shutil.which("xtb") else None
    tblite = XTBTerm()
    for pos, frame in zip(positions, frames):
        def step(p=pos):
            atoms.positions = p + 1e-6 * rng.normal(size=p.shape)  # a new geometry every call
            atoms.get_forces()

        record("mlpmm_step", _time(step, repeats))
        record("ensemble", _time(lambda f=frame: ensemble.compute(jittered(f)), repeats))
        record("single_member", _time(lambda f=frame: single.compute(jittered(f)), repeats))
        record("mm_forcefield", _time(lambda p=pos: mm_ff.energy_forces(p), repeats))
        if xtb_pc is not None:
            record("xtb_embedding", _time(lambda f=frame: xtb_pc.compute(jittered(f)), max(1, repeats // 4)))
        record("tblite_vacuum", _time(lambda f=frame: tblite.compute(jittered(f)), max(1, repeats // 4)))
        for method in methods:
            level = LevelOfTheory.from_config({"method": method, "basis": basis, "grid_level": 3})
            t0 = time.perf_counter()
            qmmm_energy_forces(frame, level)
            record(f"pyscf_{method}", 1e3 * (time.perf_counter() - t0))

    mean = {k: float(np.mean(v)) for k, v in times.items()}
    ratios = {k: mean[k] / mean["ensemble"] for k in mean if k != "ensemble"}
    result = {
        "ms_per_call": mean,
        "ratio_to_ensemble": ratios,
        "n_frames": n_frames,
        "n_atoms_full": len(atoms),
        "n_atoms_frame": [len(f) for f in frames],
        "n_qm": int(frames[0].arrays["qm_mask"].sum()),
        "n_members": len(ensemble.models),
        "trained_models": bool(args.models),
        "pyscf_basis": basis,
        "torch_threads": torch.get_num_threads(),
        "quick": args.quick,
    }
    print(f"{'method':<16}{'ms/call':>12}{'× ensemble':>12}")
    for k, v in sorted(mean.items(), key=lambda kv: kv[1]):
        print(f"{k:<16}{v:>12.2f}{v / mean['ensemble']:>12.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
