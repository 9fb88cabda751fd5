#!/usr/bin/env python
"""Build a periodic box of the demo's ethanol (residue ETH, GAFF2) in TIP3P water, optionally with
Na+/Cl- ion pairs, relaxed with the force field alone (OpenMM).

The ethanol geometry is the demo's (data/demo/ethanol_water.pdb); OpenMM's ``Modeller.addSolvent``
fills a cubic box of edge ``--box`` (Å) with pre-equilibrated TIP3P water; each ion pair replaces
two waters (Na+ at the O of the first, Cl- at the O of the second of a deterministic choice of
waters at least 6 Å from ethanol and 8 Å from each other, minimum image; amber14 Joung–Cheatham ions). The box is
minimised and equilibrated (``--md-steps`` of 1 fs Langevin at 300 K, rigid water, PME) on the
CPU platform with one thread and a fixed seed, so the same arguments give the same file on one
machine. Written with OpenMM's PDB writer (CONECT records for ETH).

    python tools/build_solvated_system.py --box 20 --ion-pairs 1 --out data/ions/ethanol_nacl_water.pdb
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mlmm.mm import mm_platform  # noqa: E402  (one thread: deterministic PME)
DEMO = ROOT / "data" / "demo" / "ethanol_water.pdb"
FORCE_FIELD = ["amber14/tip3p.xml", str(ROOT / "data" / "demo" / "ethanol_gaff2.xml")]


def tip3p_water() -> np.ndarray:
    """TIP3P water (O, H1, H2) positions in Å, O at the origin, in the xy plane, at the geometry of
    OpenMM's amber14/tip3p.xml (its O–H length and H–O–H angle: the rigid water of the MM part)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(Path(app.__file__).parent / "data" / "amber14" / "tip3p.xml").getroot()
    r_oh = float(root.find("HarmonicBondForce/Bond").get("length")) * 10.0
    half = float(root.find("HarmonicAngleForce/Angle").get("angle")) / 2.0
    return np.array([[0.0, 0.0, 0.0], [r_oh * np.sin(half), r_oh * np.cos(half), 0.0], [-r_oh * np.sin(half), r_oh * np.cos(half), 0.0]])


def solvate(box_ang: float, ion_pairs: int) -> app.Modeller:
    """Ethanol at the box centre, TIP3P water around it, ``ion_pairs`` NaCl in place of waters."""
    pdb = app.PDBFile(str(DEMO))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.delete([r for r in pdb.topology.residues() if r.name != "ETH"])
    eth = np.asarray(modeller.getPositions().value_in_unit(unit.angstrom))
    modeller.positions = (eth - eth.mean(axis=0) + box_ang / 2.0) * unit.angstrom
    ff = app.ForceField(*FORCE_FIELD)
    modeller.addSolvent(ff, model="tip3p", boxSize=openmm.Vec3(box_ang, box_ang, box_ang) * unit.angstrom, neutralize=False)
    if ion_pairs:
        pos = np.asarray(modeller.getPositions().value_in_unit(unit.angstrom))
        centre = pos[:9].mean(axis=0)
        waters = [r for r in modeller.topology.residues() if r.name == "HOH"]
        oxygens = np.array([pos[next(a.index for a in r.atoms() if a.name == "O")] for r in waters])
        def distance(a: np.ndarray, b: np.ndarray) -> float:  # minimum image in the cubic box
            d = a - b
            return float(np.linalg.norm(d - box_ang * np.round(d / box_ang)))

        chosen: list[int] = []
        for k in np.argsort([distance(o, centre) for o in oxygens]):  # nearest to ethanol first
            if distance(oxygens[k], centre) > 6.0 and all(distance(oxygens[k], oxygens[c]) > 8.0 for c in chosen):
                chosen.append(int(k))
            if len(chosen) == 2 * ion_pairs:
                break
        if len(chosen) < 2 * ion_pairs:
            raise SystemExit(f"box of {box_ang} Å too small for {ion_pairs} ion pairs 8 Å apart")
        sites = oxygens[chosen]
        modeller.delete([waters[k] for k in chosen])
        ions = app.Topology()
        chain = ions.addChain()
        for n, name in enumerate(["NA", "CL"] * ion_pairs):
            element = app.element.sodium if name == "NA" else app.element.chlorine
            ions.addAtom(name, element, ions.addResidue(name, chain))
        modeller.add(ions, sites * unit.angstrom)
    return modeller


def relax(modeller: app.Modeller, box_ang: float, md_steps: int, seed: int) -> np.ndarray:
    """Minimised and briefly equilibrated positions (Å): force field only (PME, cutoff 9 Å or half
    the box), CPU platform, one thread."""
    ff = app.ForceField(*FORCE_FIELD)
    cutoff = min(9.0, 0.5 * box_ang) * unit.angstrom
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff, constraints=None, rigidWater=True)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 1.0 * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, *mm_platform("CPU"))
    context.setPositions(modeller.positions)
    context.applyConstraints(1e-8)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 2000)
    context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    integrator.step(md_steps)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 2000)
    state = context.getState(getPositions=True, getEnergy=True)
    print(f"relaxed: E = {state.getPotentialEnergy()}")
    return np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom))


def write(topology: app.Topology, positions_ang: np.ndarray, path: Path) -> None:
    """PDB without OpenMM's dated remark (reproducible); molecules kept whole, not wrapped."""
    text = io.StringIO()
    app.PDBFile.writeFile(topology, positions_ang * unit.angstrom, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(ln for ln in text.getvalue().splitlines(keepends=True)
                            if not ln.startswith("REMARK   1 CREATED WITH OPENMM")))


def build(box_ang: float, ion_pairs: int, out: Path, md_steps: int = 2000, seed: int = 11) -> None:
    modeller = solvate(box_ang, ion_pairs)
    write(modeller.topology, relax(modeller, box_ang, md_steps, seed), out)
    n_water = sum(r.name == "HOH" for r in modeller.topology.residues())
    print(f"{out}: ethanol + {n_water} waters + {ion_pairs} NaCl, box {box_ang} Å")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--box", type=float, required=True, help="cubic box edge (Å)")
    parser.add_argument("--ion-pairs", type=int, default=0)
    parser.add_argument("--md-steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    build(args.box, args.ion_pairs, args.out, args.md_steps, args.seed)


if __name__ == "__main__":
    main()
