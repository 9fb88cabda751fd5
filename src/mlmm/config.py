"""Load and validate workflow configuration against workflow/schemas/config.schema.yaml.

Validation fills in the schema defaults (recursively, so a missing section gets all of its
defaults) and turns the first schema violation into one :class:`ConfigError` that names the
config file and the dotted field, e.g. ``config/config.yaml: al.max_iterations: 'two' is not
of type 'integer'``. Sections that run MD take their timestep/temperature/friction from the
schema's shared ``$defs/md`` block (``$ref``); :func:`expand_schema` inlines it, so defaults,
string coercion, validation and the generated docs see those keys as the section's own.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH: Path = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration does not match the schema."""


def load_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Read the JSON Schema (YAML syntax) as written, ``$ref`` and ``$defs`` included."""
    with open(path) as fh:
        return yaml.safe_load(fh)


def expand_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with every local ``$ref`` to ``#/$defs/<name>`` inlined.

    The referenced block's properties join the node's own (own keys first) and the node's
    ``unevaluatedProperties`` becomes ``additionalProperties``: the same accepted configs, in a
    form the default filling, coercion and doc generation can walk property by property.
    """
    defs = schema.get("$defs", {})

    def expand(node: Any) -> Any:
        if isinstance(node, list):
            return [expand(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: expand(v) for k, v in node.items() if k not in ("$ref", "$defs")}
        ref = node.get("$ref")
        if ref is not None:
            name = ref.removeprefix("#/$defs/")
            if ref == name or name not in defs:
                raise ConfigError(f"{SCHEMA_PATH}: unresolvable $ref {ref!r} (only local #/$defs/<name>)")
            shared = expand(defs[name])
            out["properties"] = {**out.get("properties", {}), **shared["properties"]}
            if "unevaluatedProperties" in out:
                out["additionalProperties"] = out.pop("unevaluatedProperties")
        return out

    return expand(schema)


def _fill_defaults(instance: dict[str, Any], schema: dict[str, Any]) -> None:
    """Insert schema defaults into ``instance`` in place, descending into object properties."""
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(instance[key], sub)


_SCALAR_TYPES = {"integer": int, "number": (int, float), "boolean": bool}


def _coerce_strings(instance: dict[str, Any], schema: dict[str, Any]) -> None:
    """Turn strings into the numbers/booleans the schema asks for, in place.

    ``snakemake --config al='{max_iterations: 4}'`` parses nested values with YAML's BaseLoader,
    which leaves every scalar a string; a string that reads (as YAML) as the expected type is
    converted, anything else is left for validation to report.
    """
    for key, sub in schema.get("properties", {}).items():
        value = instance.get(key)
        if isinstance(value, dict):
            _coerce_strings(value, sub)
            continue
        types = sub.get("type")
        wanted = [t for t in (types if isinstance(types, list) else [types]) if t in _SCALAR_TYPES]
        if not isinstance(value, str) or not wanted or "string" in (types if isinstance(types, list) else [types]):
            continue
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            continue
        if any(isinstance(parsed, _SCALAR_TYPES[t]) and not (t != "boolean" and isinstance(parsed, bool)) for t in wanted):
            instance[key] = parsed


def _field(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        prefix = f"{path}." if path else ""
        return ", ".join(f"{prefix}{k}" for k in extra) or path or "<top level>"
    return path or "<top level>"


def validate_config(
    config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH, source: str = "config"
) -> dict[str, Any]:
    """Validate ``config`` in place (defaults filled in) and return it.

    Raises :class:`ConfigError` naming ``source`` and the offending field.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(config).__name__}")
    schema = expand_schema(load_schema(schema_path))
    _coerce_strings(config, schema)
    _fill_defaults(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties":
            msg = "unknown key (not in the schema; check spelling)"
        elif err.validator == "required":
            missing = [k for k in err.validator_value if k not in err.instance]
            where = ".".join(str(p) for p in err.absolute_path)
            raise ConfigError(
                f"{source}: {', '.join(f'{where}.{k}' if where else k for k in missing)}: required "
                "(no default: it is specific to your system; see config/README.md)"
            )
        else:
            msg = err.message
        raise ConfigError(f"{source}: {_field(err)}: {msg}")
    _check_consistency(config, source)
    return config


def _check_consistency(config: dict[str, Any], source: str) -> None:
    """Cross-field rules the schema cannot express."""
    tr = config["training"]
    emb = config["system"]["embedding"]
    if emb["switch_width"] > emb["cutoff"]:
        raise ConfigError(
            f"{source}: system.embedding.switch_width: must not exceed system.embedding.cutoff "
            f"({emb['switch_width']} > {emb['cutoff']})"
        )
    al = config["al"]
    if not al["sigma_lo"] < al["sigma_hi"] <= al["sigma_stop"]:
        raise ConfigError(
            f"{source}: al.sigma_lo/sigma_hi/sigma_stop: expected sigma_lo < sigma_hi <= sigma_stop, "
            f"got {al['sigma_lo']}, {al['sigma_hi']}, {al['sigma_stop']}"
        )
    sampling = config["sampling"]
    if sampling["metadynamics"]["activate"] and not sampling["metadynamics"]["plumed"].strip():
        raise ConfigError(
            f"{source}: sampling.metadynamics.plumed: required when sampling.metadynamics.activate is true "
            "(a PLUMED input whose CV names atoms of your system; see config/README.md)"
        )
    if sampling["adaptive"]["activate"] and not sampling["adaptive"]["cvs"]:
        raise ConfigError(
            f"{source}: sampling.adaptive.cvs: required when sampling.adaptive.activate is true "
            "(CVs as 0-based QM atom indices of your system)"
        )
    if al["metadynamics_walkers"] > al["n_walkers"]:
        raise ConfigError(f"{source}: al.metadynamics_walkers: {al['metadynamics_walkers']} exceeds al.n_walkers "
                          f"({al['n_walkers']})")
    if al["metadynamics_walkers"] and not sampling["metadynamics"]["plumed"].strip():
        raise ConfigError(f"{source}: al.metadynamics_walkers: needs sampling.metadynamics.plumed (the PLUMED input "
                          "whose CVs the walkers bias)")
    if tr["val_fraction"] >= 0.9:
        raise ConfigError(f"{source}: training.val_fraction: must leave frames to train on (< 0.9)")
    if not any(s["activate"] for s in config["sampling"].values()):
        raise ConfigError(f"{source}: sampling: no sampler has activate: true")
    metad = config["production"]["metadynamics"]
    if metad["activate"] and "METAD" not in metad["plumed"]:
        raise ConfigError(f"{source}: production.metadynamics.plumed: activate is true but the PLUMED input has no METAD action")
    ex = config["excited"]
    if ex["td"]["window"] > ex["td"]["n_states"]:
        raise ConfigError(f"{source}: excited.td.window: must not exceed excited.td.n_states "
                          f"({ex['td']['window']} > {ex['td']['n_states']})")
    if ex["level"]["density_fit"]:
        raise ConfigError(f"{source}: excited.level.density_fit: PySCF has no density-fitted TDA/TDDFT gradients")
    if ex["activate"] and not any(sampling[name]["activate"] for name in ex["absorption_samplers"]):
        raise ConfigError(f"{source}: excited.absorption_samplers: none of {ex['absorption_samplers']} is active "
                          "in sampling; the absorption spectrum needs frames of an unbiased sampler (xtb_md, wigner)")
    xal = ex["al"]
    if not xal["sigma_lo"] < xal["sigma_hi"] <= xal["sigma_stop"]:
        raise ConfigError(f"{source}: excited.al.sigma_lo/sigma_hi/sigma_stop: expected sigma_lo < sigma_hi <= sigma_stop")
    if ex["spectra"]["e_min"] >= ex["spectra"]["e_max"]:
        raise ConfigError(f"{source}: excited.spectra.e_min: must be below excited.spectra.e_max")


def section_with_defaults(section: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """One config section (dotted, e.g. ``"training"`` or ``"labeling.level"``): ``values`` with the
    schema defaults filled in, validated against that section's schema.

    For library users, benchmarks and tests that need one section's settings without a whole
    config (which must name a system); the cross-field rules of :func:`validate_config`, which
    need the whole config, are not checked.
    """
    schema = expand_schema(load_schema())
    for key in section.split("."):
        schema = schema.get("properties", {}).get(key)
        if schema is None or schema.get("type") != "object":
            raise ConfigError(f"{section}: not a config section of the schema")
    out = copy.deepcopy(values or {})
    _coerce_strings(out, schema)
    _fill_defaults(out, schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(out), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        msg = "unknown key (not in the schema; check spelling)" if err.validator == "additionalProperties" else err.message
        raise ConfigError(f"{section}.{_field(err)}: {msg}".replace(".<top level>", ""))
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    path = Path(path)
    with open(path) as fh:
        try:
            config = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return validate_config(config, source=str(path))

