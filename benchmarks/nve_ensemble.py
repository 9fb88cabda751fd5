"""NVE with the trained ensemble through OpenMM: energy conservation while waters cross the embedding.

The MLP/MM potential of ``--models`` (:func:`mlmm.potentials.ensemble_potential`: the members on the
Frame cut with ``system.embedding`` + the force field in OpenMM) on the config's system: NVT
equilibration (``production.nve_equilibration_steps``), then ``--ps`` of NVE (velocity Verlet,
:func:`mlmm.dynamics.mlp_md.run_mlp_md` with friction 0; time step ``production.timestep``).
Reported:

* total-energy drift (linear fit, eV/ps and eV/atom/ps) and RMS fluctuation about it
  (:func:`mlmm.dynamics.stages.energy_drift`, as the production NVE check), std(E_tot) vs std(E_pot);
* crossings of the embedding boundaries by MM molecules between consecutive saved steps
  (:func:`mlmm.embedding.boundary_crossings` of :func:`mlmm.embedding.molecule_weights`): at the
  cutoff (w between 0 and > 0) and at cutoff − switch_width (w between < 1 and 1);
* at the NVE start, the forces of the MD's OpenMM System (force field + the ensemble as
  PythonForce, Reference platform, a float64 copy of the members) on a few QM atoms and on MM
  sites of molecules inside the switching shell (0 < w < 1) and, with link atoms, on the cut
  bonds' Q1, M1 and one M2 atom (``boundary``) vs central finite differences of its total energy.

    OMP_NUM_THREADS=1 python benchmarks/nve_ensemble.py --models results/models/it5/member{0,1,2}.pt
    OMP_NUM_THREADS=1 python benchmarks/nve_ensemble.py --quick    # the test's smoke run

``--quick``: ethanol + its 30 nearest waters of the demo structure (no box), no equilibration, 200
steps of 0.05 fs (10 fs), no σ or force stop, and unless ``--models`` are given two untrained
float64 members (tests/test_sampling_uncertainty.py) with a 5 Å embedding (1.5 Å switch), in
whose shell a third of the waters lie. Untrained members are smooth but unphysical: the ethanol
falls apart after ~15 fs, so the quick run is short; its numbers test the integration and the
MM-site forces, not the model.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: Embedding (Å) of the untrained members of ``--quick``: the 30 nearest waters straddle its shell.
QUICK_CUTOFF_ANG, QUICK_SWITCH_WIDTH_ANG = 5.0, 1.5
#: Finite-difference step (Å) of the force check.
FD_STEP_ANG = 1e-4
#: QM atoms (mlmm order) and switched MM molecules the force check takes.
FD_QM_ATOMS, FD_MM_MOLECULES = (0, 1, 2, 3), 3


def force_check(system, ensemble, embedding, positions_ang: np.ndarray) -> dict:
    """OpenMM forces of the MLP/MM MD System vs −dE/dR by central differences (step
    :data:`FD_STEP_ANG` Å) on :data:`FD_QM_ATOMS` and the atoms of up to :data:`FD_MM_MOLECULES`
    molecules in the switching shell (w nearest 0.5) at ``positions_ang`` (mlmm order); eV/Å."""
    from mlmm.dynamics.md import md_energy_forces
    from mlmm.embedding import molecule_weights
    from mlmm.model.ensemble import Ensemble
    from mlmm.potentials import ensemble_potential

    double = Ensemble([copy.deepcopy(m).double() for m in ensemble.models], "cpu")
    evaluate = md_energy_forces(ensemble_potential(system, double, embedding=embedding, mm_platform="Reference"))
    frame, _ = system.cut_frame(positions_ang, embedding, sampler="benchmark", iteration=0, source="nve_ensemble", seed=0)
    w = molecule_weights(frame, int(system.molecule_index.max()) + 1)
    shell = np.flatnonzero((w > 0.0) & (w < 1.0))
    switched = np.sort(shell[np.argsort(np.abs(w[shell] - 0.5))][:FD_MM_MOLECULES])  # the most switched ones
    qm_atoms = [i for i in FD_QM_ATOMS if i < system.n_qm]
    boundary = sorted({a for link in system.links for a in (link.qm, link.mm, link.neighbours[0])})  # Q1, M1, an M2
    mm_atoms = np.flatnonzero(np.isin(system.molecule_index, switched)).tolist()
    pos0 = np.asarray(positions_ang, float)
    f0 = evaluate(pos0)[1]
    analytic, numeric = [], []
    for i in qm_atoms + boundary + mm_atoms:
        for k in range(3):
            e = []
            for sign in (1.0, -1.0):
                p = pos0.copy()
                p[i, k] += sign * FD_STEP_ANG
                e.append(evaluate(p)[0])
            analytic.append(f0[i, k])
            numeric.append(-(e[0] - e[1]) / (2 * FD_STEP_ANG))
    analytic, numeric = np.reshape(analytic, (-1, 3)), np.reshape(numeric, (-1, 3))
    n_inner = len(qm_atoms) + len(boundary)
    part = {"qm": slice(0, len(qm_atoms)), "boundary": slice(len(qm_atoms), n_inner), "mm": slice(n_inner, None)}
    return {"qm_atoms": qm_atoms, "boundary_atoms": boundary, "mm_atoms": mm_atoms, "mm_molecule_weights": w[switched].round(4).tolist(),
            "step_ang": FD_STEP_ANG,
            **{f"{k}_max_abs_error_eV_per_A": float(np.abs(analytic[s] - numeric[s]).max(initial=0.0)) for k, s in part.items()},
            **{f"{k}_max_abs_force_eV_per_A": float(np.abs(analytic[s]).max(initial=0.0)) for k, s in part.items()}}


def nve(system, ensemble, embedding, *, steps: int, timestep_fs: float, temperature_K: float, stride: int,
        equilibration_steps: int, friction_per_fs: float, sigma_stop: float, max_force: float, seed: int) -> dict:
    """NVT equilibration + NVE of the MLP/MM potential; energies, drift, boundary crossings, force check."""
    from mlmm.dynamics.mlp_md import run_mlp_md
    from mlmm.dynamics.stages import energy_drift
    from mlmm.embedding import boundary_crossings, molecule_weights
    from mlmm.potentials import ensemble_potential

    common = dict(timestep_fs=timestep_fs, temperature_K=temperature_K, stride=stride, sigma_stop=sigma_stop,
                  max_force=max_force, iteration=-1, source="nve_ensemble", sigma_action="warn")
    start = None
    if equilibration_steps:
        equil = run_mlp_md(system, ensemble_potential(system, ensemble, embedding=embedding), steps=equilibration_steps,
                           friction_per_fs=friction_per_fs, seed=seed, sampler="nve_equilibration", **common)
        if equil.stop_reason:
            raise RuntimeError(f"NVT equilibration stopped: {equil.stop_reason}")
        start = equil.final_state
    check = force_check(system, ensemble, embedding, system.atoms.positions if start is None else start.positions)
    run = run_mlp_md(system, ensemble_potential(system, ensemble, embedding=embedding), steps=steps, friction_per_fs=0.0,
                     seed=seed + 1, sampler="nve", start=start, **common)
    e_pot, e_kin = np.asarray(run.potential_energies), np.asarray(run.kinetic_energies)
    e_tot = e_pot + e_kin
    n_molecules = int(system.molecule_index.max()) + 1
    weights = np.array([molecule_weights(f, n_molecules) for f in run.frames])
    embedded = (weights > 0.0).sum(axis=1)
    return {
        "n_atoms": len(system.atoms), "n_qm": system.n_qm, "n_mm_molecules": n_molecules,
        "periodic": system.box_ang is not None, "embedding": embedding.to_dict(), "n_members": len(ensemble.models),
        "model_dtype": str(ensemble.dtype).removeprefix("torch."),
        "timestep_fs": timestep_fs, "temperature_K": temperature_K, "stride": stride,
        "equilibration_steps": equilibration_steps, "steps_requested": steps, "steps": run.steps_done,
        "completed": run.stop_reason is None, "stop_reason": run.stop_reason, "ms_per_step": run.ms_per_step,
        **energy_drift(np.asarray(run.times_fs), e_tot, len(system.atoms)),
        "etot_std_eV": float(e_tot.std()), "epot_std_eV": float(e_pot.std()),
        "etot_std_over_epot_std": float(e_tot.std() / e_pot.std()),
        "temperature_mean_K": float(np.mean(run.temperatures_K)),
        "n_sigma_exceeded": len(run.sigma_exceeded_steps), "sigma_max_eV_per_A": float(np.max(run.sigmas)),
        "crossings": boundary_crossings(weights),
        "embedded_molecules": {"min": int(embedded.min()), "max": int(embedded.max()),
                               "switched_mean": float(((weights > 0.0) & (weights < 1.0)).sum(axis=1).mean())},
        "force_check": check,
        "units": {"energy": "eV", "time": "ps (drift), fs (timestep)", "force": "eV/Å"},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help="ensemble members (results/models/it<N>/member<k>.pt)")
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"), help="system and production settings")
    parser.add_argument("--ps", type=float, default=5.0, help="NVE length (ps)")
    parser.add_argument("--timestep", type=float, help="fs (default: production.timestep)")
    parser.add_argument("--stride", type=int, help="steps between saved steps (default: production.stride)")
    parser.add_argument("--equilibration-steps", type=int, help="NVT steps first (default: production.nve_equilibration_steps)")
    parser.add_argument("--device", default="cpu", help="where the members run (cpu, cuda, auto)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="small system, 200 steps (the smoke test); see module docstring")
    parser.add_argument("--out", default="benchmarks/results/nve_ensemble.json")
    args = parser.parse_args(argv)

    from mlmm.config import load_config
    from mlmm.jobs import system_from_config, write_json
    from mlmm.model.ensemble import Ensemble
    from mlmm.settings import Settings

    settings = Settings.from_config(load_config(args.config))
    production = settings.production
    if args.quick:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import DEMO, embedding_with, solute_with_nearest_waters
        from test_sampling_uncertainty import member

        quick_embedding = embedding_with(cutoff=QUICK_CUTOFF_ANG, switch_width=QUICK_SWITCH_WIDTH_ANG)
        ensemble = (Ensemble.load_for(args.models, args.device) if args.models
                    else Ensemble([member(seed, quick_embedding) for seed in (1, 2)], "cpu"))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        system = solute_with_nearest_waters(DEMO, "ETH", 30, Path(args.out).with_name("nve_quick_eth30.pdb"))
        embedding, steps, timestep, stride, equilibration = ensemble.embedding, 200, 0.05, 2, 0
        sigma_stop, max_force = np.inf, 1e6  # untrained members: no σ or blow-up stop (smooth if unphysical forces)
    else:
        if not args.models:
            parser.error("--models is required (trained members; --quick runs untrained ones)")
        ensemble = Ensemble.load_for(args.models, args.device)
        structure = Path(settings.system.structure)
        system = system_from_config(str(structure if structure.is_absolute() else ROOT / structure), settings.system)
        embedding = settings.system.embedding
        timestep = args.timestep or production.timestep
        steps = int(round(args.ps * 1000.0 / timestep))
        stride = args.stride or production.stride
        equilibration = production.nve_equilibration_steps if args.equilibration_steps is None else args.equilibration_steps
        sigma_stop, max_force = production.sigma_stop, production.max_force
    result = nve(system, ensemble, embedding, steps=steps, timestep_fs=timestep, temperature_K=production.temperature,
                 stride=stride, equilibration_steps=equilibration, friction_per_fs=production.friction,
                 sigma_stop=sigma_stop, max_force=max_force, seed=args.seed)
    result["models"] = list(args.models or ["untrained (tests/test_potentials.py ensemble())"])
    result["structure"] = str(system.source)
    c, fc = result["crossings"], result["force_check"]
    print(json.dumps(result, indent=1))
    print(f"NVE {result['steps'] * timestep / 1000:.3f} ps at {timestep} fs, {result['n_atoms']} atoms: drift "
          f"{result['drift_eV_per_ps']:.3e} eV/ps = {result['drift_eV_per_atom_per_ps']:.3e} eV/atom/ps, "
          f"std E_tot {result['etot_std_eV']:.2e} eV vs std E_pot {result['epot_std_eV']:.2e} eV; crossings: "
          f"{c['cutoff']} at the cutoff, {c['inner']} at the inner edge, {c['molecules']} molecules; "
          f"force check max |F - F_FD| {fc['qm_max_abs_error_eV_per_A']:.1e} eV/Å on {len(fc['qm_atoms'])} QM atoms, "
          f"{fc['mm_max_abs_error_eV_per_A']:.1e} eV/Å on {len(fc['mm_atoms'])} MM sites")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
