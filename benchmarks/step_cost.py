"""Per-step cost of MLP/MM MD vs xTB/MM MD, the force field alone, GFN2-xTB and PySCF HF/DFT.

Three systems (PME boxes), each with seeded 0.02 Å displacements, cut around the QM region:

* ``demo``: the demo config's system (ethanol, 9 QM atoms, 209 TIP3P, 636 atoms);
* ``at_pair``: the adenine–thymine pair (30 QM atoms) in TIP3P water, data/bench/at_pair_water.pdb
  (tools/build_bench_system.py, 1500 atoms);
* ``box5k``: the demo ethanol re-solvated in a 38 Å cubic TIP3P box (OpenMM Modeller, 5286 atoms),
  written next to ``--out`` at run time and loaded like at_pair.

All are cut with the members' embedding (the config's ``system.embedding`` for untrained members),
as the MLP/MM calculator does.

Timed per frame (wall clock, torch/BLAS threads as set by OMP_NUM_THREADS):

* ``mlpmm_step``: one full MLP/MM force call of the ASE calculator (cut + ensemble + OpenMM force field);
* ``ensemble`` / ``single_member`` / ``committee_8``: the ML QM term alone on a Frame (all
  members / one member / 8 members, in one batched pass: :class:`mlmm.model.committee.BatchedCommittee`);
  ``ensemble_one_by_one`` / ``single_member_one_by_one``: the same with the members run one after
  another through their schnetpack module graphs (the path before the batched committee);
* ``md_term``: the Frame-free QM term MD calls (:class:`mlmm.model.committee.CommitteeMDTerm`);
* ``mm_forcefield``: the classical part alone; ``cut_frame``: building the embedded Frame;
* ``xtb_embedding``: GFN2-xTB in the MM point charges (xtb program), ``tblite_vacuum``: GFN2-xTB
  of the QM atoms only (tblite, in-process);
* ``pyscf_<method>/<basis>``: PySCF QM/MM energy + forces (electrostatic embedding), one call.

Timed per MD step (``md_ms_per_step``; the config's ``production`` timestep, temperature, friction,
seed and stride; OpenMM CPU platform with ``OPENMM_CPU_THREADS`` threads, 1 if unset):

* ``mlpmm_frame_cut``: the same with a Frame cut every step (the MD path before the Frame-free term);
* ``mlpmm``: production MLP/MM MD (:func:`mlmm.dynamics.md.run_md` on the members' potential:
  OpenMM Langevin steps with the ensemble as PythonForce, the energies evaluated again every
  ``stride`` steps), after one warm-up block of ``stride`` steps, set-up not counted;
* ``xtbmm``: the same for the samplers' xTB/MM potential (:func:`mlmm.sampling.common.xtb_mm_potential`);
* ``mm_only``: the same integrator on the partitioned force field alone (no QM PythonForce).

Ratios: ``ratio_to_ensemble`` = time / ensemble time; ``md_ratios``: MLP/MM MD step / committee
call, MLP/MM MD step / xTB/MM MD step, MM-only step / MLP/MM MD step; ``targets`` compares the
at_pair ensemble with the issue's goals (≥ 1e4× faster than B3LYP/def2-SVP, ≥ 5× faster than xtb).
``targets_step``: the MD-speed goals (:func:`step_targets`).
``profile``: the cProfile top functions (cumulative time) of 10 (``--quick``: 2) MLP/MM calculator
calls (Frame cut + committee + MM); ``profile_md_term``: the same for the Frame-free QM term that
MD calls. Members are trained models (``--models``) or, without them, untrained members of the config's
architecture (identical cost) with zeroed output layers (:func:`untrained_member`).
Usage: OMP_NUM_THREADS=1 python benchmarks/step_cost.py [--quick] [--models m0.pt m1.pt ...]
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import os
import pstats
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlmm.model.ensemble import Ensemble
    from mlmm.model.nn import NeuralNetworkPotential
    from mlmm.potentials import QMMMCalculator
    from mlmm.settings import EmbeddingSettings, ProductionSettings, Settings
    from mlmm.system import System

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

AT_PAIR_PDB = ROOT / "data" / "bench" / "at_pair_water.pdb"
AT_PAIR_FORCE_FIELD = ["amber14/tip3p.xml", str(ROOT / "data" / "bench" / "at_pair_gaff2.xml")]
DEMO_PDB = ROOT / "data" / "demo" / "ethanol_water.pdb"
DEMO_FORCE_FIELD = ["amber14/tip3p.xml", str(ROOT / "data" / "demo" / "ethanol_gaff2.xml")]
#: Edge (Å) of the cubic TIP3P box around the demo ethanol for ``box5k`` (5286 atoms).
BOX5K_EDGE_ANG = 38.0
#: The large committee whose cost is compared with one member's.
COMMITTEE_LARGE = 8
#: MD blocks of ``stride`` steps per timed run: the first is the warm-up.
MD_BLOCKS, MD_BLOCKS_QUICK = 6, 2


def _time(fn, repeats: int) -> float:
    """Mean wall time of ``fn()`` in ms after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1e3 * (time.perf_counter() - t0) / repeats


def _profile(fn, steps: int, top: int = 12) -> list[dict]:
    """cProfile ``steps`` calls of ``fn``; the ``top`` functions by cumulative time (ms per call)."""
    fn()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        fn()
    prof.disable()
    stats = pstats.Stats(prof).stats
    rows = []
    for (path, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        rows.append({"function": f"{Path(path).name}:{line}({name})", "cum_ms_per_step": 1e3 * cumtime / steps,
                     "self_ms_per_step": 1e3 * tottime / steps, "calls_per_step": ncalls / steps})
    rows.sort(key=lambda r: -r["cum_ms_per_step"])
    return rows[:top]


def build_box5k(path: Path) -> Path:
    """The demo ethanol re-solvated in a cubic TIP3P box of :data:`BOX5K_EDGE_ANG` (OpenMM Modeller),
    written to ``path`` (PDB with the ethanol's CONECT records)."""
    import openmm
    import openmm.app as app
    import openmm.unit as unit

    pdb = app.PDBFile(str(DEMO_PDB))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.delete([res for res in modeller.topology.residues() if res.name == "HOH"])
    edge = openmm.Vec3(BOX5K_EDGE_ANG, BOX5K_EDGE_ANG, BOX5K_EDGE_ANG) * unit.angstrom
    modeller.addSolvent(app.ForceField(*DEMO_FORCE_FIELD), model="tip3p", boxSize=edge, neutralize=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        app.PDBFile.writeFile(modeller.topology, modeller.positions, fh)
    return path


def md_step_ms(potential: QMMMCalculator, md: ProductionSettings, *, blocks: int) -> float:
    """Wall ms per step of production MD (:func:`mlmm.dynamics.md.run_md`: OpenMM Langevin steps
    with the QM term as PythonForce, the energies evaluated again every ``md.stride`` steps), timed
    between the saved steps after the first block (warm-up; the run's set-up is not counted)."""
    from mlmm.dynamics.md import run_md

    stamps: list[float] = []
    run = run_md(potential, steps=blocks * md.stride, timestep_fs=md.timestep, temperature_K=md.temperature,
                 friction_per_fs=md.friction, seed=md.seed, stride=md.stride,
                 on_frame=lambda step, atoms: stamps.append(time.perf_counter()))
    if run.stop_reason is not None:
        raise RuntimeError(f"step_cost MD of {potential.system.source}: {run.stop_reason}")
    return 1e3 * (stamps[-1] - stamps[0]) / ((blocks - 1) * md.stride)


def mm_md_step_ms(potential: QMMMCalculator, md: ProductionSettings, *, blocks: int) -> float:
    """Wall ms per step of the same Langevin integrator on the potential's partitioned force field
    alone (no QM PythonForce; OpenMM platform and threads as in MD), after one warm-up block."""
    import openmm
    import openmm.unit as unit

    from mlmm.dynamics.md import CONSTRAINT_TOLERANCE
    from mlmm.mm import mm_platform

    system = potential.system
    integrator = openmm.LangevinMiddleIntegrator(md.temperature * unit.kelvin, md.friction / unit.femtosecond,
                                                 md.timestep * unit.femtosecond)
    integrator.setRandomNumberSeed(md.seed)
    integrator.setConstraintTolerance(CONSTRAINT_TOLERANCE)
    platform, properties = mm_platform(potential.mm.platform)
    context = openmm.Context(potential.mm.openmm_system, integrator, platform, properties)
    if system.mm.box_vectors_ang is not None:
        context.setPeriodicBoxVectors(*(system.mm.box_vectors_ang * unit.angstrom))
    context.setPositions(system.to_file_order(system.atoms.positions) * unit.angstrom)
    context.applyConstraints(CONSTRAINT_TOLERANCE)
    context.setVelocitiesToTemperature(md.temperature * unit.kelvin, md.seed)
    integrator.step(md.stride)
    t0 = time.perf_counter()
    integrator.step((blocks - 1) * md.stride)
    return 1e3 * (time.perf_counter() - t0) / ((blocks - 1) * md.stride)


def nonbonded_method(potential: QMMMCalculator) -> str:
    """Name of the nonbonded method (e.g. ``PME``) of the OpenMM NonbondedForce of the potential's MM part."""
    import openmm

    names = {getattr(openmm.NonbondedForce, n): n
             for n in ("NoCutoff", "CutoffNonPeriodic", "CutoffPeriodic", "Ewald", "PME", "LJPME")}
    (method,) = {names[f.getNonbondedMethod()] for f in potential.mm.openmm_system.getForces()
                 if isinstance(f, openmm.NonbondedForce)}
    return method


def bench_md(system: System, embedding: EmbeddingSettings, ensemble: Ensemble, md: ProductionSettings, *,
             blocks: int) -> dict:
    """ms per MD step of MLP/MM (the members' potential), xTB/MM (the samplers') and the force field alone."""
    from mlmm.potentials import ensemble_potential
    from mlmm.sampling.common import xtb_mm_potential

    mlpmm = ensemble_potential(system, ensemble, embedding=embedding)
    frame_cut = ensemble_potential(system, ensemble, embedding=embedding)
    frame_cut.md_term = None  # the QM term on a Frame cut every step, as before the Frame-free MD term
    ms = {"mlpmm": md_step_ms(mlpmm, md, blocks=blocks),
          "mlpmm_frame_cut": md_step_ms(frame_cut, md, blocks=blocks),
          "xtbmm": md_step_ms(xtb_mm_potential(system, embedding), md, blocks=blocks),
          "mm_only": mm_md_step_ms(mlpmm, md, blocks=blocks)}
    return {"md_ms_per_step": ms, "nonbonded_method": nonbonded_method(mlpmm),
            "md_timed_steps": (blocks - 1) * md.stride, "md_stride": md.stride}


def bench_system(name, system, embedding, ensemble, levels, *, n_frames, repeats, profile_steps, rng,
                 quick_skip_pyscf: bool = False) -> dict:
    """Time every method on ``n_frames`` displaced frames of ``system``; returns the JSON section."""
    from mlmm.engines.pyscf_qmmm import qmmm_energy_forces
    from mlmm.engines.xtb import XTBEmbeddingTerm, XTBTerm
    from mlmm.mm import OpenMMTerm
    from mlmm.model.committee import CommitteeMDTerm
    from mlmm.model.ensemble import Ensemble
    from mlmm.potentials import QMMMCalculator

    single = Ensemble(ensemble.models[:1])
    committee8 = Ensemble([copy.deepcopy(ensemble.models[k % len(ensemble.models)]) for k in range(COMMITTEE_LARGE)])
    md_term = CommitteeMDTerm.for_system(system, ensemble, embedding)
    mm_ff = OpenMMTerm(system)
    atoms = system.atoms.copy()
    atoms.calc = QMMMCalculator(system, ensemble, mm_ff, embedding)
    positions = [system.atoms.positions + rng.normal(scale=0.02, size=system.atoms.positions.shape) for _ in range(n_frames)]

    def cut(p):
        return system.cut_frame(p, embedding, sampler="benchmark", iteration=0, source="step_cost", seed=0)[0]

    frames = [cut(p) for p in positions]
    times: dict[str, list[float]] = {}

    def record(key: str, ms: float) -> None:
        times.setdefault(key, []).append(ms)

    def jittered(frame):
        """The frame with a 1e-6 Å displacement, so no calculator can return a cached result."""
        moved = frame.copy()
        moved.positions = moved.positions + 1e-6 * rng.normal(size=moved.positions.shape)
        return moved

    def step(p):
        atoms.positions = p + 1e-6 * rng.normal(size=p.shape)  # a new geometry every call
        atoms.get_forces()

    xtb_pc = XTBEmbeddingTerm() if shutil.which("xtb") else None
    tblite = XTBTerm()
    for pos, frame in zip(positions, frames):
        record("mlpmm_step", _time(lambda p=pos: step(p), repeats))
        record("ensemble", _time(lambda f=frame: ensemble.compute(jittered(f)), repeats))
        record("single_member", _time(lambda f=frame: single.compute(jittered(f)), repeats))
        record(f"committee_{COMMITTEE_LARGE}", _time(lambda f=frame: committee8.compute(jittered(f)), repeats))
        record("ensemble_one_by_one", _time(lambda f=frame: one_by_one(ensemble, jittered(f)), repeats))
        record("single_member_one_by_one", _time(lambda f=frame: one_by_one(single, jittered(f)), repeats))
        if md_term is not None:
            record("md_term", _time(lambda p=pos: md_term.energy_forces(p + 1e-6 * rng.normal(size=p.shape)), repeats))
        record("mm_forcefield", _time(lambda p=pos: mm_ff.energy_forces(p), repeats))
        record("cut_frame", _time(lambda p=pos: cut(p), repeats))
        if xtb_pc is not None:
            record("xtb_embedding", _time(lambda f=frame: xtb_pc.compute(jittered(f)), max(1, repeats // 4)))
        record("tblite_vacuum", _time(lambda f=frame: tblite.compute(jittered(f)), max(1, repeats // 4)))
        for level in ([] if quick_skip_pyscf else levels):
            method, basis = level.method, level.basis
            t0 = time.perf_counter()
            qmmm_energy_forces(frame, level)
            record(f"pyscf_{method}/{basis}", 1e3 * (time.perf_counter() - t0))
            print(f"  {name}: pyscf {method}/{basis} {times[f'pyscf_{method}/{basis}'][-1]:.0f} ms", flush=True)

    mean = {k: float(np.mean(v)) for k, v in times.items()}
    step_ms = mean["mlpmm_step"]
    return {
        "ms_per_call": mean,
        "ratio_to_ensemble": {k: mean[k] / mean["ensemble"] for k in mean if k != "ensemble"},
        "committee_ratios": {
            f"committee_{COMMITTEE_LARGE}_over_single_member": mean[f"committee_{COMMITTEE_LARGE}"] / mean["single_member"],
            f"committee_{COMMITTEE_LARGE}_over_single_member_one_by_one":
                mean[f"committee_{COMMITTEE_LARGE}"] / mean["single_member_one_by_one"],
            "ensemble_one_by_one_over_batched": mean["ensemble_one_by_one"] / mean["ensemble"],
        },
        "step_breakdown_fraction": {k: mean[k] / step_ms for k in ("ensemble", "mm_forcefield", "cut_frame")},
        "profile": _profile(lambda: step(positions[0]), profile_steps),
        "profile_md_term": None if md_term is None else _profile(
            lambda: md_term.energy_forces(positions[0] + 1e-6 * rng.normal(size=positions[0].shape)), profile_steps),
        "n_frames": n_frames,
        "n_atoms_full": len(atoms),
        "n_atoms_frame": [len(f) for f in frames],
        "n_qm": int(frames[0].arrays["qm_mask"].sum()),
        "n_mm_charges": [int((~f.arrays["qm_mask"]).sum()) for f in frames],
        "embedding": embedding.to_dict(),
    }


def one_by_one(ensemble: Ensemble, frame) -> tuple:
    """The members run one after another through their schnetpack module graphs (the path before
    the batched committee; still the one for evaluating labels DBs)."""
    from mlmm.model.ensemble import predict
    from mlmm.model.field import frame_to_inputs

    return predict(ensemble.models, frame_to_inputs(frame, ensemble.pair_list, ensemble.dtype))


def untrained_member(settings: Settings, seed: int) -> NeuralNetworkPotential:
    """A member of the config's architecture with random weights (``torch.manual_seed(seed)``)
    whose energy head outputs nothing: its nets' last layers zeroed, the polarisability's bias at
    -30 (softplus ≈ 1e-13). It costs what a trained member costs (the same dense operations;
    measured equal to random weights) and exerts no forces, so the timed MD stays finite on every
    system: random members push the A–T pair's atoms into the water within 20 steps, and a
    polarisability without charges pulls a hydrogen onto a water charge (−α E²/2) within 50."""
    import torch

    from mlmm.model.nn import build_model, energy_head

    torch.manual_seed(seed)
    model = build_model(settings.training, qm_charge_e=settings.system.qm_charge, embedding=settings.system.embedding)
    head = energy_head(model)
    with torch.no_grad():
        for net in (head.energy_net, head.charge_net, head.polarizability_net, head.dipole_net):
            last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.weight.zero_()
            last.bias.fill_(-30.0 if net is head.polarizability_net else 0.0)
    return model.eval()


def step_targets(systems: dict) -> dict:
    """The MD-speed goals, from one run: a committee of 8 ≤ 2× one member; the demo's MLP/MM MD
    step ≤ 3 ms and ≥ 5× faster than GFN2-xTB in the point charges on the same frame (≥ 10× at 30
    QM atoms); the 5000-atom PME box's step ≤ 10 ms. ``met`` compares each value with its target."""
    targets = {}
    for name, sec in systems.items():
        ms, md = sec["ms_per_call"], sec["md_ms_per_step"]
        targets[f"{name}_committee_{COMMITTEE_LARGE}_over_single_member"] = {
            "value": sec["committee_ratios"][f"committee_{COMMITTEE_LARGE}_over_single_member"], "target": 2.0,
            "le": True}
        if "xtb_embedding" in ms and name in ("demo", "at_pair"):
            targets[f"{name}_xtb_embedding_over_mlpmm_md_step"] = {
                "value": ms["xtb_embedding"] / md["mlpmm"], "target": 5.0 if name == "demo" else 10.0, "le": False}
    for name, limit in (("demo", 3.0), ("box5k", 10.0)):
        if name in systems:
            targets[f"{name}_mlpmm_md_step_ms"] = {"value": systems[name]["md_ms_per_step"]["mlpmm"], "target": limit,
                                                   "le": True}
    for t in targets.values():
        t["met"] = bool(t["value"] <= t["target"]) if t["le"] else bool(t["value"] >= t["target"])
    return targets


def _levels(spec: str) -> list[tuple[str, str]]:
    """'hf/6-31g,b3lyp/def2-svp' -> [('hf', '6-31g'), ('b3lyp', 'def2-svp')]."""
    return [tuple(item.split("/", 1)) for item in spec.split(",") if item]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--models", nargs="*", default=None, help="trained member files (default: untrained)")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per frame for the fast methods")
    parser.add_argument("--levels", default="hf/6-31g,b3lyp/def2-svp", help="PySCF method/basis list")
    parser.add_argument("--systems", default="demo,at_pair,box5k")
    parser.add_argument("--quick", action="store_true",
                        help="1 frame, few repeats, 2 MD blocks, HF/STO-3G on the demo only (smoke test)")
    parser.add_argument("--out", default="benchmarks/results/step_cost.json")
    args = parser.parse_args(argv)

    import torch
    import yaml

    from dataclasses import replace

    from mlmm.config import validate_config
    from mlmm.jobs import system_from_config
    from mlmm.model.ensemble import Ensemble
    from mlmm.settings import Settings
    from mlmm.system import load_system

    torch.set_num_threads(1)
    cfg = validate_config(yaml.safe_load(Path(args.config).read_text()), source=args.config)
    settings = Settings.from_config(cfg)
    n_frames, repeats, profile_steps = (1, 2, 2) if args.quick else (args.frames, args.repeats, 10)
    md_blocks = MD_BLOCKS_QUICK if args.quick else MD_BLOCKS
    # the config's SCF settings (conv_tol, max_cycle), without density fitting, at each method/basis on grid level 3
    levels = [replace(settings.labeling.level, method=method, basis=basis, grid_level=3, density_fit=False)
              for method, basis in ([("hf", "sto-3g")] if args.quick else _levels(args.levels))]

    if args.models:
        ensemble = Ensemble.load(args.models, torch.device("cpu"))
    else:
        ensemble = Ensemble([untrained_member(settings, k) for k in range(settings.training.n_members)])

    rng = np.random.default_rng(0)
    result: dict = {"n_members": len(ensemble.models), "trained_models": bool(args.models),
                    "torch_threads": torch.get_num_threads(), "quick": args.quick, "systems": {}}
    for name in [s for s in args.systems.split(",") if s]:
        if name == "demo":
            structure = cfg["system"]["structure"]
            if not Path(structure).is_absolute() and not Path(structure).exists():
                structure = str(ROOT / structure)
            system = system_from_config(structure, settings.system)
        elif name == "at_pair":
            system = load_system(AT_PAIR_PDB, "resname ADN THM", force_field=AT_PAIR_FORCE_FIELD)
        elif name == "box5k":
            system = load_system(build_box5k(Path(args.out).parent / "box5k_ethanol_water.pdb"), "resname ETH",
                                 force_field=DEMO_FORCE_FIELD)
        else:
            raise ValueError(f"unknown system {name!r} (demo, at_pair, box5k)")
        print(f"{name}: timing …", flush=True)
        # frames cut with the members' embedding (the config's for untrained members), as in MD
        sec = bench_system(name, system, ensemble.embedding, ensemble, levels, n_frames=n_frames, repeats=repeats,
                           profile_steps=profile_steps, rng=rng, quick_skip_pyscf=args.quick and name != "demo")
        sec.update(bench_md(system, ensemble.embedding, ensemble, settings.production, blocks=md_blocks))
        md_ms = sec["md_ms_per_step"]
        sec["md_ratios"] = {"mlpmm_over_ensemble": md_ms["mlpmm"] / sec["ms_per_call"]["ensemble"],
                            "xtbmm_over_mlpmm": md_ms["xtbmm"] / md_ms["mlpmm"],
                            "mlpmm_frame_cut_over_mlpmm": md_ms["mlpmm_frame_cut"] / md_ms["mlpmm"],
                            "mlpmm_over_xtbmm": md_ms["mlpmm"] / md_ms["xtbmm"],
                            "mm_only_over_mlpmm": md_ms["mm_only"] / md_ms["mlpmm"]}
        result["systems"][name] = sec

    result["openmm_cpu_threads"] = int(os.environ["OPENMM_CPU_THREADS"])  # set by mlmm.mm.mm_platform (1 if unset)
    at = result["systems"].get("at_pair")
    if at is not None:
        ms = at["ms_per_call"]
        targets = {}
        if "pyscf_b3lyp/def2-svp" in ms:
            targets["b3lyp_def2svp_over_ensemble"] = {"value": ms["pyscf_b3lyp/def2-svp"] / ms["ensemble"], "target": 1e4}
        if "xtb_embedding" in ms:
            targets["xtb_embedding_over_ensemble"] = {"value": ms["xtb_embedding"] / ms["ensemble"], "target": 5.0}
            targets["xtb_embedding_over_mlpmm_step"] = {"value": ms["xtb_embedding"] / ms["mlpmm_step"], "target": 5.0}
        for t in targets.values():
            t["met"] = bool(t["value"] >= t["target"])
        result["targets_at_pair"] = targets

    result["targets_step"] = step_targets(result["systems"])
    for name, sec in result["systems"].items():
        mean = sec["ms_per_call"]
        print(f"\n{name}: {sec['n_qm']} QM atoms, {sec['n_mm_charges'][0]} MM charges, {result['n_members']} members")
        print(f"{'method':<26}{'ms/call':>12}{'× ensemble':>12}")
        for k, v in sorted(mean.items(), key=lambda kv: kv[1]):
            print(f"{k:<26}{v:>12.2f}{v / mean['ensemble']:>12.2f}")
        md_ms, ratios = sec["md_ms_per_step"], sec["md_ratios"]
        print(f"MD step ({sec['n_atoms_full']} atoms, {sec['nonbonded_method']}, {sec['md_timed_steps']} steps): "
              f"MLP/MM {md_ms['mlpmm']:.2f} ms, xTB/MM {md_ms['xtbmm']:.2f} ms, MM only {md_ms['mm_only']:.2f} ms")
        print(f"  MLP/MM step / committee {ratios['mlpmm_over_ensemble']:.2f}, MLP/MM step / xTB/MM step "
              f"{ratios['mlpmm_over_xtbmm']:.2f}, MM part / MLP/MM step {ratios['mm_only_over_mlpmm']:.2f}")
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in sec["committee_ratios"].items())
              + f"; xTB/MM step / MLP/MM step {ratios['xtbmm_over_mlpmm']:.2f}, "
              f"Frame-cut MLP/MM step / MLP/MM step {ratios['mlpmm_frame_cut_over_mlpmm']:.2f}")
        print("profile (cumulative ms per MLP/MM step):")
        for row in sec["profile"][:8]:
            print(f"  {row['cum_ms_per_step']:9.2f}  {row['function']}")
    for key, t in {**result.get("targets_at_pair", {}), **result["targets_step"]}.items():
        print(f"target {key}: {t['value']:.2f} ({'≤' if t.get('le') else '≥'} {t['target']:g}) "
              f"{'met' if t['met'] else 'NOT met'}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
