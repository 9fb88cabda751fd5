#!/usr/bin/env python
"""Build the bundled demo: ethanol (resname ETH) in a periodic cubic box of rigid TIP3P water.

Waters sit on a jittered 6×6×6 lattice (spacing L/6 ≈ 3.1 Å) with random orientations and the
amber14 TIP3P geometry; lattice sites that clash with ethanol are dropped (every water atom ≥ 2.0 Å
and water O ≥ 2.6 Å from ethanol heavy atoms), giving ≈1 g/cm³. The ethanol's GAFF2/AM1-BCC force
field (``ethanol_gaff2.xml`` next to ``--out``) is built from that start by
tools/build_force_field.py. The box is then relaxed with mlmm's own xTB/MM potential (GFN2-xTB
ethanol with fixed Mulliken charges in the force field: GAFF2 Lennard-Jones, TIP3P, rigid water):
an L-BFGS minimisation followed by a short strongly damped Langevin run at 300 K (OpenMM), and
written with CONECT records. Deterministic for a given seed (tblite, OpenMM and numpy on one thread).

The committed data/demo/ethanol_water.pdb was made by this script's first version (the same
lattice, relaxed with generic Lennard-Jones on ethanol); its force field comes from
``tools/build_force_field.py data/demo/ethanol_water.pdb --residue ETH:0``, which keeps its
coordinates. Rerunning this script gives a new, equivalent box.

    python tools/build_demo_system.py --out data/demo/ethanol_water.pdb
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from ase.build import molecule
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_force_field import build as build_force_field, write_with_conect  # noqa: E402
from build_solvated_system import tip3p_water  # noqa: E402

ETHANOL_NAMES = ["C1", "C2", "O1", "HO1", "H21", "H22", "H11", "H12", "H13"]  # ASE 'CH3CH2OH' order
WATER_NAMES = ["O", "H1", "H2"]
BOX_ANG = 18.6
GRID = 6


def initial_box(seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Ethanol positions (9, 3) at the box centre and a list of water (3, 3) position arrays."""
    rng = np.random.default_rng(seed)
    eth = molecule("CH3CH2OH").positions
    eth = eth - eth.mean(axis=0) + BOX_ANG / 2.0
    heavy = eth[:3]
    spacing = BOX_ANG / GRID
    template = tip3p_water()
    waters = []
    for ijk in np.ndindex(GRID, GRID, GRID):
        o = (np.array(ijk) + 0.5) * spacing + rng.uniform(-0.2, 0.2, 3)
        w = Rotation.random(random_state=rng).apply(template) + o
        d_all = np.linalg.norm(w[:, None, :] - eth[None, :, :], axis=2)
        d_heavy = np.linalg.norm(w[0] - heavy, axis=1)
        if d_all.min() >= 2.0 and d_heavy.min() >= 2.6:
            waters.append(w)
    return eth, waters


def write_pdb(path: str | Path, eth: np.ndarray, waters: list[np.ndarray]) -> None:
    """Write ETH (resid 1) + HOH (resid 2…) with elements and a CRYST1 box; molecules wrapped whole."""
    import MDAnalysis as mda

    box = np.full(3, BOX_ANG)
    eth = eth - box * np.floor(eth.mean(axis=0) / box)
    waters = [w - box * np.floor(w[0] / box) for w in waters]
    n_res = 1 + len(waters)
    n_atoms = 9 + 3 * len(waters)
    u = mda.Universe.empty(n_atoms, n_residues=n_res, atom_resindex=np.r_[np.zeros(9, int), np.repeat(np.arange(1, n_res), 3)],
                           trajectory=True)
    u.add_TopologyAttr("name", ETHANOL_NAMES + WATER_NAMES * len(waters))
    u.add_TopologyAttr("element", ["C", "C", "O"] + ["H"] * 6 + ["O", "H", "H"] * len(waters))
    u.add_TopologyAttr("resname", ["ETH"] + ["HOH"] * len(waters))
    u.add_TopologyAttr("resid", np.arange(1, n_res + 1))
    u.add_TopologyAttr("chainID", ["A"] * n_atoms)
    u.add_TopologyAttr("occupancy", np.ones(n_atoms))
    u.add_TopologyAttr("tempfactor", np.zeros(n_atoms))
    u.atoms.positions = np.vstack([eth] + waters)
    u.dimensions = [BOX_ANG, BOX_ANG, BOX_ANG, 90.0, 90.0, 90.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.atoms.write(str(path))


def relax(path: Path, xml: Path, *, seed: int, min_steps: int, md_steps: int) -> None:
    """Minimise, then briefly equilibrate, the box in ``path`` with the xTB/MM potential (force
    field: amber14 TIP3P + ``xml``; OpenMM, rigid water); rewrite it."""
    from mlmm.dynamics.md import minimize, run_md
    from mlmm.potentials import build_potential
    from mlmm.settings import EmbeddingSettings
    from mlmm.system import load_system

    system = load_system(path, "resname ETH", force_field=["amber14/tip3p.xml", str(xml)])
    potential = build_potential("xtb", system, embedding=EmbeddingSettings(cutoff=8.0, switch_width=1.5))
    start = system.atoms.copy()
    start.positions = minimize(potential, system.atoms.positions, max_iterations=min_steps)
    start.calc = potential
    print(f"after {min_steps} minimiser iterations E = {start.get_potential_energy():.3f} eV")
    run = run_md(potential, steps=md_steps, timestep_fs=0.5, temperature_K=300.0, friction_per_fs=0.05, seed=seed,
                 start=start, max_force_ev_ang=50.0, progress_desc="relax demo box")
    if run.stop_reason:
        raise RuntimeError(f"demo relaxation failed: {run.stop_reason}")
    end = run.final_state
    print(f"after {md_steps} Langevin steps: E = {potential.results['energy']:.3f} eV")
    pos = end.positions
    waters = [pos[system.molecule_index == m] for m in range(system.molecule_index.max() + 1)]
    write_pdb(path, pos[: system.n_qm], waters)
    write_with_conect(path, xml)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/demo/ethanol_water.pdb")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--min-steps", type=int, default=300, help="minimiser iterations")
    parser.add_argument("--md-steps", type=int, default=2000)
    args = parser.parse_args()
    eth, waters = initial_box(args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".pdb")
    os.close(fd)
    xml = out.with_name("ethanol_gaff2.xml")
    try:
        write_pdb(tmp, eth, waters)
        build_force_field(Path(tmp), {"ETH": 0}, xml)
        relax(Path(tmp), xml, seed=args.seed, min_steps=args.min_steps, md_steps=args.md_steps)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    mass_g = (46.069 + 18.015 * len(waters)) / 6.02214076e23
    print(f"{out}: ethanol + {len(waters)} TIP3P waters, box {BOX_ANG} Å, density {mass_g / (BOX_ANG * 1e-8) ** 3:.3f} g/cm³")


if __name__ == "__main__":
    main()
