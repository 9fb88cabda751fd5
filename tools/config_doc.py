"""Generate config/README.md from workflow/schemas/config.schema.yaml (run after schema edits).

Usage: python tools/config_doc.py > config/README.md
tests/test_config.py checks that config/README.md is up to date.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mlmm.config import expand_schema, load_schema  # noqa: E402

HEADER = """# Configuration reference

Generated from `workflow/schemas/config.schema.yaml` by `tools/config_doc.py`; do not edit by hand.
Units: Å, fs, K, eV, e. Unknown keys and wrong types stop the workflow with an error naming the
file and the field.

**Your config is the whole config.** `snakemake --configfile my.yaml` reads `my.yaml` only: the
demo `config/config.yaml` is read when no `--configfile` is given and is never merged under
yours. Every key you leave out takes the default below; no default is specific to a system.
Required: `system.structure` and `system.qm_selection` (no default), a force field (either
`system.force_field` or `system.topology`), and the inputs that name atoms of your system when
their section is active: `sampling.metadynamics.plumed`, `sampling.adaptive.cvs` and
`production.metadynamics.plumed`. A minimal config (a PDB with CONECT records for MOL, its
GAFF2 XML from `tools/build_force_field.py`):

```yaml
system:
  structure: data/my_molecule_water.pdb
  force_field: [amber14/tip3p.xml, data/my_molecule_gaff2.xml]
  qm_selection: "resname MOL"
```

The four force-field inputs (`system.*`): a PDB/PDBx `structure` + `force_field` (OpenMM XML);
`topology: x.prmtop` (Amber) with `structure: x.inpcrd` (or any coordinate file); `topology:
x.psf` (CHARMM) + `parameters: [par.prm, top.rtf, …]`; `topology: x.top` (GROMACS) with
`structure: x.gro` and `gromacs_include` for its `#include` files.

To change a few demo values, give both files (they merge in order) or use `--config`:
`snakemake --configfile config/config.yaml config/examples/sampling_adaptive.yaml`,
`snakemake --config al='{max_iterations: 4}'`. `config/examples/` holds whole configs for
other systems and cluster settings.

The MD keys `timestep`, `temperature` and `friction` of the sections that run MD
(`sampling.xtb_md`, `sampling.metadynamics`, `sampling.adaptive`, `al`, `production`,
`excited.dynamics`) are one shared block of the schema (`$defs/md`): same meaning, units and
defaults everywhere.
"""


def _rows(schema: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    for key, sub in schema.get("properties", {}).items():
        name = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            lines.append(f"\n## `{name}`\n\n{sub.get('description', '').strip()}\n")
            lines.append("| key | type | default | description |\n|---|---|---|---|")
            nested = [k for k, v in sub["properties"].items() if v.get("type") == "object" and "properties" in v]
            for k, v in sub["properties"].items():
                if k in nested:
                    continue
                lines.append(_row(f"{name}.{k}", v, required=k in sub.get("required", [])))
            for k in nested:
                lines.extend(_rows({"properties": {k: sub["properties"][k]}}, prefix=f"{name}."))
        else:
            lines.append(_row(name, sub))
    return lines


def _row(name: str, sub: dict[str, Any], required: bool = False) -> str:
    typ = sub.get("type", "")
    typ = " or ".join(typ) if isinstance(typ, list) else typ
    default = str(sub.get("default", "")).strip().replace("\n", " ⏎ ")  # multi-line defaults (PLUMED input) on one row
    default = "**required**" if required else f"`{default}`"
    return f"| `{name}` | {typ} | {default} | {sub.get('description', '').strip()} |"


def main() -> None:
    schema = expand_schema(load_schema())
    top = [k for k, v in schema["properties"].items() if v.get("type") != "object"]
    print(HEADER)
    print("## top level\n\n| key | type | default | description |\n|---|---|---|---|")
    for k in top:
        print(_row(k, schema["properties"][k]))
    objects = {k: v for k, v in schema["properties"].items() if v.get("type") == "object"}
    print("\n".join(_rows({"properties": objects})))


if __name__ == "__main__":
    main()
