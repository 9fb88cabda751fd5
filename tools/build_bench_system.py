#!/usr/bin/env python
"""Build the ~30-atom QM benchmark system: the adenine–thymine Watson–Crick pair in TIP3P water.

The A–T pair (30 atoms, C10H11N7O2) is the S22 geometry shipped with ASE
(``ase.collections.s22``); adenine is residue ADN (15 atoms), thymine THM (15 atoms; not ADE/THY,
which OpenMM's PDB reader renames to the nucleotides A/DT). It sits at the centre of a periodic
cubic box of rigid TIP3P waters on a jittered lattice (spacing 3.1 Å, random orientations,
amber14 TIP3P geometry); sites with any water atom < 2.0 Å or water O < 2.6 Å from a solute
heavy atom are dropped (≈1 g/cm³). The box is NOT relaxed: it is used only to time single points
(benchmarks/step_cost.py), and its clash-free start converges SCF without trouble. The GAFF2 force
field of the two bases (data/bench/at_pair_gaff2.xml) and the PDB's CONECT records come from
tools/build_force_field.py.

    python tools/build_bench_system.py --out data/bench/at_pair_water.pdb
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_force_field import build as build_force_field  # noqa: E402
from build_solvated_system import tip3p_water  # noqa: E402

SPACING_ANG = 3.1


def build(grid: int, seed: int) -> tuple[list[str], np.ndarray, list[np.ndarray], float]:
    """(solute symbols, solute positions at the box centre, water (3, 3) arrays, box edge Å)."""
    from ase.collections import s22

    pair = s22["Adenine-thymine_Watson-Crick_complex"]
    box = grid * SPACING_ANG
    solute = pair.positions - pair.positions.mean(axis=0) + box / 2.0
    heavy = solute[pair.numbers > 1]
    rng = np.random.default_rng(seed)
    template = tip3p_water()
    waters = []
    for ijk in np.ndindex(grid, grid, grid):
        o = (np.array(ijk) + 0.5) * SPACING_ANG + rng.uniform(-0.2, 0.2, 3)
        w = Rotation.random(random_state=rng).apply(template) + o
        if (np.linalg.norm(w[:, None] - solute[None], axis=2).min() >= 2.0
                and np.linalg.norm(w[0] - heavy, axis=1).min() >= 2.6):
            waters.append(w)
    return pair.get_chemical_symbols(), solute, waters, box


def write_pdb(path: Path, symbols: list[str], solute: np.ndarray, waters: list[np.ndarray], box: float) -> None:
    """ADN (resid 1, first 15 atoms of the S22 pair) + THM (resid 2) + HOH (resid 3…), CRYST1 box."""
    import MDAnalysis as mda

    n_sol = len(symbols)
    n_res = 2 + len(waters)
    n_atoms = n_sol + 3 * len(waters)
    resindex = np.r_[np.zeros(15, int), np.ones(n_sol - 15, int), np.repeat(np.arange(2, n_res), 3)]
    u = mda.Universe.empty(n_atoms, n_residues=n_res, atom_resindex=resindex, trajectory=True)
    names = [f"{s}{k + 1}" for k, s in enumerate(symbols)]
    u.add_TopologyAttr("name", names + ["O", "H1", "H2"] * len(waters))
    u.add_TopologyAttr("element", symbols + ["O", "H", "H"] * len(waters))
    u.add_TopologyAttr("resname", ["ADN", "THM"] + ["HOH"] * len(waters))
    u.add_TopologyAttr("resid", np.arange(1, n_res + 1))
    u.add_TopologyAttr("chainID", ["A"] * n_atoms)
    u.add_TopologyAttr("occupancy", np.ones(n_atoms))
    u.add_TopologyAttr("tempfactor", np.zeros(n_atoms))
    u.atoms.positions = np.vstack([solute] + waters)
    u.dimensions = [box, box, box, 90.0, 90.0, 90.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.atoms.write(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/bench/at_pair_water.pdb")
    parser.add_argument("--grid", type=int, default=8, help="lattice sites per box edge (box = 3.1 Å × grid)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    symbols, solute, waters, box = build(args.grid, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_pdb(out, symbols, solute, waters, box)
    build_force_field(out, {"ADN": 0, "THM": 0}, out.with_name("at_pair_gaff2.xml"))
    mass_g = (259.27 + 18.015 * len(waters)) / 6.02214076e23
    print(f"{out}: A–T pair + {len(waters)} TIP3P waters, box {box:.1f} Å, density {mass_g / (box * 1e-8) ** 3:.3f} g/cm³")


if __name__ == "__main__":
    main()
