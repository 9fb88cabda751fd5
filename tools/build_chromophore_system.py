#!/usr/bin/env python
"""Build the chromophore demo: s-trans-1,3-butadiene (resname BUT) in the demo's box of TIP3P water.

Butadiene (10 atoms) is the smallest polyene: its lowest singlet at the TDA level is the bright
π→π* 1Bu state (HF-TDA/6-31G in the box: 6.95 eV, f 1.23; S2 f 0.001), so the bright state is S1
at the Franck–Condon geometry. On relaxation S1 stays the bright state but drops steeply (measured
in the demo: 2–6 eV, f 0.14–1 within 150 fs; docs/EXCITED.md). (The dark 2Ag double-excitation state that lies below 1Bu in
reality is absent from TDA/TDDFT; the demo shows the method, not butadiene's photophysics.)

Reproducible: an idealised planar s-trans geometry (C=C 1.34 Å, C–C 1.46 Å, C–H 1.09 Å, 120–124°)
is optimised with GFN2-xTB (tblite, in vacuum, BFGS to fmax 0.001 eV/Å); the minimum is placed at
the centre of the ethanol of the bundled, equilibrated ethanol/water box
(data/demo/ethanol_water.pdb), whose ethanol is removed; waters closer than 2.0 Å (any atom) or
2.6 Å (O to a heavy atom) to butadiene are dropped. The sampling MD of the workflow equilibrates
the cavity. Its GAFF2 force field (data/chromophore/butadiene_gaff2.xml) and the PDB's CONECT
records come from tools/build_force_field.py.

    python tools/build_chromophore_system.py --out data/chromophore/butadiene_water.pdb
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_force_field import build as build_force_field  # noqa: E402

NAMES = ["C1", "C2", "C3", "C4", "H11", "H12", "H2", "H3", "H41", "H42"]
SYMBOLS = ["C", "C", "C", "C", "H", "H", "H", "H", "H", "H"]


def idealised_butadiene() -> np.ndarray:
    """Planar s-trans H2C1=C2H–C3H=C4H2 (Å), textbook bond lengths; the start of the optimisation."""
    rad = np.deg2rad
    c2 = np.array([0.0, 0.0, 0.0])
    c3 = np.array([1.46, 0.0, 0.0])
    c1 = c2 + 1.34 * np.array([np.cos(rad(124.0)), np.sin(rad(124.0)), 0.0])
    c4 = c2 + c3 - c1  # inversion through the C2–C3 midpoint: s-trans (C2h)
    h2 = c2 + 1.09 * np.array([np.cos(rad(-118.0)), np.sin(rad(-118.0)), 0.0])
    h3 = c2 + c3 - h2
    h11 = c1 + 1.09 * np.array([np.cos(rad(180.0)), np.sin(rad(180.0)), 0.0])
    h12 = c1 + 1.09 * np.array([np.cos(rad(64.0)), np.sin(rad(64.0)), 0.0])
    h41, h42 = c2 + c3 - h11, c2 + c3 - h12
    return np.array([c1, c2, c3, c4, h11, h12, h2, h3, h41, h42])


def gfn2_minimum(positions_ang: np.ndarray, fmax_ev_ang: float = 0.001) -> tuple[np.ndarray, float]:
    """GFN2-xTB (tblite) vacuum minimum of butadiene from ``positions_ang``; (positions Å, max force eV/Å)."""
    from ase.optimize import BFGS
    from tblite.ase import TBLite

    atoms = Atoms(SYMBOLS, positions=positions_ang)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    if not BFGS(atoms, logfile=None).run(fmax=fmax_ev_ang, steps=500):
        raise RuntimeError(f"GFN2-xTB optimisation of butadiene did not reach fmax {fmax_ev_ang} eV/Å")
    return atoms.get_positions(), float(np.abs(atoms.get_forces()).max())


def build(source: str, out: str) -> None:
    """Write ``out``: optimised butadiene at the ethanol's centre of ``source``, clashing waters dropped."""
    import MDAnalysis as mda

    mol, fmax = gfn2_minimum(idealised_butadiene())
    d = lambda i, j: float(np.linalg.norm(mol[i] - mol[j]))  # noqa: E731
    print(f"GFN2-xTB minimum: max force {fmax:.1e} eV/Å; C1=C2 {d(0, 1):.3f} Å, C2–C3 {d(1, 2):.3f} Å, "
          f"C3=C4 {d(2, 3):.3f} Å; planarity (max |z|) {np.abs(mol[:, 2] - mol[:, 2].mean()).max():.1e} Å")
    u = mda.Universe(source)
    centre = u.select_atoms("resname ETH").center_of_geometry()
    pos = mol - mol.mean(axis=0) + centre
    heavy = pos[[s != "H" for s in SYMBOLS]]
    waters = []
    for res in u.select_atoms("resname HOH").residues:
        w = res.atoms.positions
        if np.linalg.norm(w[:, None] - pos[None], axis=2).min() >= 2.0 and np.linalg.norm(w[0] - heavy, axis=1).min() >= 2.6:
            waters.append(w)
    n_res, n_atoms = 1 + len(waters), len(pos) + 3 * len(waters)
    v = mda.Universe.empty(n_atoms, n_residues=n_res, trajectory=True,
                           atom_resindex=np.r_[np.zeros(len(pos), int), np.repeat(np.arange(1, n_res), 3)])
    v.add_TopologyAttr("name", NAMES + ["O", "H1", "H2"] * len(waters))
    v.add_TopologyAttr("element", SYMBOLS + ["O", "H", "H"] * len(waters))
    v.add_TopologyAttr("resname", ["BUT"] + ["HOH"] * len(waters))
    v.add_TopologyAttr("resid", np.arange(1, n_res + 1))
    v.add_TopologyAttr("chainID", ["A"] * n_atoms)
    v.add_TopologyAttr("occupancy", np.ones(n_atoms))
    v.add_TopologyAttr("tempfactor", np.zeros(n_atoms))
    v.atoms.positions = np.vstack([pos] + waters)
    v.dimensions = u.dimensions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v.atoms.write(out)
    build_force_field(Path(out), {"BUT": 0}, Path(out).with_name("butadiene_gaff2.xml"))
    print(f"{out}: butadiene + {len(waters)} waters")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="data/demo/ethanol_water.pdb")
    parser.add_argument("--out", default="data/chromophore/butadiene_water.pdb")
    args = parser.parse_args()
    build(args.source, args.out)
