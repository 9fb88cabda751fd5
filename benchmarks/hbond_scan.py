"""QM–water hydrogen-bond scan: the solute-donated H-bond in xTB/MM, MLP/MM and PySCF/MM.

The QM solute of the config (the demo: ethanol) and its nearest water, without box; the water
accepts the donor's H on a linear H-bond: its O on the donor O–H axis at O···O = r, r on a grid
(``--r-min``..``--r-max``, ``--step`` Å), the rigid water's orientation about its O relaxed at each
r with xTB/MM (the ``xtb`` potential: fixed GFN2 charges + the force field; its vacuum QM term
does not see the water, so the MM term alone is minimised; :mod:`mlmm.analysis.hbond`, as in
tests/test_mm.py). On these geometries:

* ``xtb``: xTB/MM (the samplers' potential);
* ``pyscf``: the reference the labels come from: PySCF at ``--method``/``--basis`` (default: the
  config's ``labeling.level``) in the Frame's embedding charges
  (:func:`mlmm.engines.pyscf_qmmm.qmmm_energy_forces`) + the force field without QM charges
  (QM–water Lennard-Jones; :class:`mlmm.mm.OpenMMTerm`), i.e. what the MLP/MM potential learns;
* ``mlp``: with ``--models``, the MLP/MM potential of the members
  (:func:`mlmm.potentials.ensemble_potential`, the config's ``system.embedding``).

Per potential: the O···O of the minimum (grid point, and the vertex of the parabola through it and
its neighbours) and the binding energy E(minimum) − E(r_max) in eV and kcal/mol; for ``mlp`` also the
ensemble's σ (eV/Å) at each r (large σ: the members have not seen such a geometry).

    OMP_NUM_THREADS=1 python benchmarks/hbond_scan.py --models results/models/it5/member{0,1,2}.pt
    OMP_NUM_THREADS=1 python benchmarks/hbond_scan.py --quick        # HF/STO-3G, no models (the test)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--models", nargs="+", help="ensemble members (results/models/it<N>/member<k>.pt)")
    parser.add_argument("--device", default="cpu", help="where the members run (cpu, cuda, auto)")
    parser.add_argument("--method", help="PySCF method (default: labeling.level.method)")
    parser.add_argument("--basis", help="PySCF basis (default: labeling.level.basis)")
    parser.add_argument("--donor", default="O1", help="atom name of the donor O in the QM region")
    parser.add_argument("--hydrogen", default="HO1", help="atom name of the donated H")
    parser.add_argument("--r-min", type=float, default=2.5, help="Å")
    parser.add_argument("--r-max", type=float, default=3.8, help="Å")
    parser.add_argument("--step", type=float, default=0.1, help="Å")
    parser.add_argument("--quick", action="store_true", help="HF/STO-3G reference (the test)")
    parser.add_argument("--out", default="benchmarks/results/hbond_scan.json")
    args = parser.parse_args(argv)

    from mlmm.analysis.hbond import curve_summary, relaxed_water_scan
    from mlmm.config import load_config
    from mlmm.engines.pyscf_qmmm import qmmm_energy_forces
    from mlmm.jobs import write_json
    from mlmm.mm import OpenMMTerm
    from mlmm.potentials import build_potential, ensemble_potential
    from mlmm.settings import Settings
    from mlmm.system import solute_with_nearest_waters

    settings = Settings.from_config(load_config(args.config))
    selection = re.fullmatch(r"\s*resname\s+(\S+)\s*", settings.system.qm_selection)
    if selection is None:
        raise ValueError(f"{args.config}: system.qm_selection {settings.system.qm_selection!r}: the scan needs "
                         "'resname X' (the solute residue)")
    structure = Path(settings.system.structure)
    structure = structure if structure.is_absolute() else ROOT / structure
    force_field = [str(ROOT / f) if (ROOT / f).is_file() else f for f in settings.system.force_field]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    system = solute_with_nearest_waters(structure, selection.group(1), 1, out.with_name("hbond_scan_pair.pdb"), force_field)
    names = list(system.atom_names[: system.n_qm])
    missing = [n for n in (args.donor, args.hydrogen) if n not in names]
    if missing:
        raise ValueError(f"--donor/--hydrogen: no QM atom named {missing} in {structure} (QM atom names: {names})")
    donor, hydrogen = names.index(args.donor), names.index(args.hydrogen)
    water = np.arange(system.n_qm, len(system.atoms))
    embedding = settings.system.embedding
    level = replace(settings.labeling.level, **{k: v for k, v in (("method", args.method), ("basis", args.basis)) if v})
    if args.quick:
        level = replace(level, method="hf", basis="sto-3g", density_fit=False)

    r_grid = np.round(np.arange(args.r_min, args.r_max + 0.5 * args.step, args.step), 6)
    xtb = build_potential("xtb", system, embedding=embedding)
    geometries, _ = relaxed_water_scan(lambda p: xtb.mm.energy_forces(p)[0], system.atoms.positions, donor, hydrogen,
                                       water, r_grid)

    def scan(calc) -> tuple[np.ndarray, list[float | None]]:
        """Energies (eV) of ``calc`` on the scan's geometries and its σ (eV/Å; None without one)."""
        atoms = system.atoms.copy()
        atoms.calc = calc
        energies, sigmas = [], []
        for pos in geometries:
            atoms.positions = pos
            energies.append(atoms.get_potential_energy())
            sigmas.append(calc.results.get("sigma_force"))
        return np.array(energies), sigmas

    mm = OpenMMTerm(system)  # the force field without QM charges: what the labels' QM/MM energy is added to
    reference = []
    for pos in geometries:
        frame, _ = system.cut_frame(pos, embedding, sampler="benchmark", iteration=0, source="hbond_scan", seed=0)
        reference.append(qmmm_energy_forces(frame, level).energy_ev + mm.energy_forces(pos)[0])
    curves = {"xtb": scan(xtb)[0], "pyscf": np.array(reference)}
    potentials = {}
    if args.models:
        from mlmm.model.ensemble import Ensemble

        curves["mlp"], sigmas = scan(ensemble_potential(system, Ensemble.load_for(args.models, args.device), embedding=embedding))
        potentials["mlp"] = {"sigma_force_eV_per_A": sigmas}
    potentials = {name: {**curve_summary(r_grid, e), **potentials.get(name, {})} for name, e in curves.items()}
    result = {
        "structure": str(structure), "donor": args.donor, "hydrogen": args.hydrogen, "r_oo_ang": r_grid.tolist(),
        "reference_level": level.label, "models": list(args.models or []), "embedding": embedding.to_dict(),
        "potentials": potentials,
        "units": {"length": "Å", "energy": "eV (relative_energies_eV: vs r_max)"},
    }
    print(json.dumps(result, indent=1))
    for name, s in result["potentials"].items():
        print(f"{name:6s} O···O minimum {s['r_min_ang']:.2f} Å (fit {s['r_min_fit_ang']:.3f} Å), binding vs "
              f"{r_grid[-1]:.1f} Å {s['binding_kcal_per_mol']:.2f} kcal/mol = {s['binding_eV']:.4f} eV")
    write_json(out, result)
    return result


if __name__ == "__main__":
    main()
