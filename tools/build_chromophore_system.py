#!/usr/bin/env python
"""Build the chromophore demo: acrolein (resname ACR) in the demo's box of TIP3P water.

Acrolein (the smallest enone chromophore, 8 atoms) has a dark n→π* lowest singlet and a bright
π→π* state above it (f ≈ 0.3–0.5), the textbook case for bright-state tracking. The ethanol of
the bundled ethanol/water box (data/demo/ethanol_water.pdb, already equilibrated) is replaced by
s-trans acrolein (GFN2-xTB minimum, coordinates below) at the same centre; waters closer than
2.0 Å (any atom) or 2.6 Å (O to a heavy atom) to acrolein are dropped. The sampling MD of the
workflow equilibrates the cavity.

    python tools/build_chromophore_system.py --out data/chromophore/acrolein_water.pdb
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

NAMES = ["O1", "C1", "C2", "C3", "H1", "H2", "H31", "H32"]
SYMBOLS = ["O", "C", "C", "C", "H", "H", "H", "H"]
#: s-trans acrolein O=C1H-C2H=C3H2, GFN2-xTB minimum (Å)
ACROLEIN_ANG = np.array([
    [-0.0176, -0.0336, 0.0], [1.1841, 0.0276, 0.0], [1.9631, 1.2678, 0.0], [3.2908, 1.2673, 0.0],
    [1.8059, -0.8902, 0.0], [1.3921, 2.1859, 0.0], [3.8658, 2.1779, 0.0], [3.8508, 0.3453, 0.0],
])


def build(source: str, out: str) -> None:
    import MDAnalysis as mda

    u = mda.Universe(source)
    centre = u.select_atoms("resname ETH").center_of_geometry()
    pos = ACROLEIN_ANG - ACROLEIN_ANG.mean(axis=0) + centre
    symbols = SYMBOLS
    heavy = pos[[s != "H" for s in symbols]]
    waters = []
    for res in u.select_atoms("resname HOH").residues:
        w = res.atoms.positions
        if np.linalg.norm(w[:, None] - pos[None], axis=2).min() >= 2.0 and np.linalg.norm(w[0] - heavy, axis=1).min() >= 2.6:
            waters.append(w)
    n_res, n_atoms = 1 + len(waters), len(pos) + 3 * len(waters)
    v = mda.Universe.empty(n_atoms, n_residues=n_res, trajectory=True,
                           atom_resindex=np.r_[np.zeros(len(pos), int), np.repeat(np.arange(1, n_res), 3)])
    v.add_TopologyAttr("name", NAMES + ["O", "H1", "H2"] * len(waters))
    v.add_TopologyAttr("element", symbols + ["O", "H", "H"] * len(waters))
    v.add_TopologyAttr("resname", ["ACR"] + ["HOH"] * len(waters))
    v.add_TopologyAttr("resid", np.arange(1, n_res + 1))
    v.add_TopologyAttr("chainID", ["A"] * n_atoms)
    v.add_TopologyAttr("occupancy", np.ones(n_atoms))
    v.add_TopologyAttr("tempfactor", np.zeros(n_atoms))
    v.atoms.positions = np.vstack([pos] + waters)
    v.dimensions = u.dimensions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v.atoms.write(out)
    print(f"{out}: acrolein + {len(waters)} waters")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="data/demo/ethanol_water.pdb")
    parser.add_argument("--out", default="data/chromophore/acrolein_water.pdb")
    args = parser.parse_args()
    build(args.source, args.out)
