"""Generate config/README.md from workflow/schemas/config.schema.yaml (run after schema edits).

Usage: python tools/config_doc.py > config/README.md
tests/test_config.py checks that config/README.md is up to date.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mlmm.config import load_schema  # noqa: E402

HEADER = """# Configuration reference

Generated from `workflow/schemas/config.schema.yaml` by `tools/config_doc.py`; do not edit by hand.
`config/config.yaml` is the demo; `config/examples/` holds realistic cluster settings. Any key
left out takes the default below. Unknown keys and wrong types stop the workflow with an
error naming the field. Units: Å, fs, K, eV, e.

Override on the command line, e.g. `snakemake --config al='{max_iterations: 4}'`, or with
`--configfile my.yaml`.
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
                lines.append(_row(f"{name}.{k}", v))
            for k in nested:
                lines.extend(_rows({"properties": {k: sub["properties"][k]}}, prefix=f"{name}."))
        else:
            lines.append(_row(name, sub))
    return lines


def _row(name: str, sub: dict[str, Any]) -> str:
    typ = sub.get("type", "")
    typ = " or ".join(typ) if isinstance(typ, list) else typ
    default = str(sub.get("default", "")).strip().replace("\n", " ⏎ ")  # multi-line defaults (PLUMED input) on one row
    return f"| `{name}` | {typ} | `{default}` | {sub.get('description', '').strip()} |"


def main() -> None:
    schema = load_schema()
    top = [k for k, v in schema["properties"].items() if v.get("type") != "object"]
    print(HEADER)
    print("## top level\n\n| key | type | default | description |\n|---|---|---|---|")
    for k in top:
        print(_row(k, schema["properties"][k]))
    objects = {k: v for k, v in schema["properties"].items() if v.get("type") == "object"}
    print("\n".join(_rows({"properties": objects})))


if __name__ == "__main__":
    main()
