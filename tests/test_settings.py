"""Typed settings: every schema key is a settings field and back (no code-only defaults), and
the settings built from a validated config give its values back unchanged."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

import pytest
import yaml

from conftest import config_with
from mlmm import settings as st
from mlmm.config import SCHEMA_PATH, load_config, load_schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(SCHEMA_PATH)


def _fields(cls: type) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)


def _section_class(hint: typing.Any) -> type | None:
    """The settings class a field holds, directly or as ``tuple[Class, ...]``."""
    if inspect.isclass(hint) and issubclass(hint, st.Section):
        return hint
    args = [a for a in typing.get_args(hint) if a is not Ellipsis]
    if typing.get_origin(hint) is tuple and len(args) == 1 and inspect.isclass(args[0]) and issubclass(args[0], st.Section):
        return args[0]
    return None


def _schema_pairs() -> list[tuple[str, dict, type]]:
    """(dotted path, schema node as written, settings class) for every object node of the schema, $defs included."""
    pairs: list[tuple[str, dict, type]] = [("$defs.md", SCHEMA["$defs"]["md"], st.MDSettings)]

    def walk(path: str, node: dict, cls: type) -> None:
        pairs.append((path or "<top level>", node, cls))
        hints = _fields(cls)
        for key, sub in node.get("properties", {}).items():
            item = sub.get("items", {}) if sub.get("type") == "array" else {}
            child = sub if "properties" in sub else item if "properties" in item else None
            if child is not None and key in hints:
                kind = _section_class(hints[key])
                assert kind is not None, f"{path}.{key}: schema object, settings field {hints[key]} is not a settings class"
                walk(f"{path}.{key}".lstrip("."), child, kind)

    walk("", SCHEMA, st.Settings)
    return pairs


@pytest.mark.parametrize("path, node, cls", _schema_pairs(), ids=lambda v: v if isinstance(v, str) else "")
def test_schema_keys_and_settings_fields_are_the_same(path: str, node: dict, cls: type) -> None:
    keys = set(node.get("properties", {}))
    if "$ref" in node:  # the shared MD block: the class inherits its fields
        assert node["$ref"] == "#/$defs/md" and issubclass(cls, st.MDSettings), path
        assert node.get("unevaluatedProperties") is False and "additionalProperties" not in node, path
        keys |= set(SCHEMA["$defs"]["md"]["properties"])
    fields = set(_fields(cls)) - {"SECTION"}
    assert keys == fields, f"{path}: schema-only {sorted(keys - fields)}, settings-only {sorted(fields - keys)}"
    assert cls.SECTION == path.replace("<top level>", "").replace(".cv_distances", ".cv_distances[]") or path in (
        "excited.level",  # labeling.level and excited.level are both LevelSettings
    ), (path, cls.SECTION)


def test_every_settings_class_has_a_schema_section_and_no_defaults() -> None:
    classes = {obj for _, obj in inspect.getmembers(st, inspect.isclass) if issubclass(obj, st.Section) and obj is not st.Section}
    assert classes == {cls for _, _, cls in _schema_pairs()}
    for cls in classes:
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, f"{cls.__name__}.{f.name}"
        assert cls.__dataclass_params__.frozen, cls.__name__


@pytest.mark.parametrize("path", [ROOT / "config" / "config.yaml", ROOT / "config" / "examples" / "chromophore.yaml"])
def test_settings_round_trip_the_validated_config(path: Path) -> None:
    config = load_config(path)
    settings = st.Settings.from_config(config)
    assert settings.to_dict() == config
    raw = yaml.safe_load(path.read_text())
    assert settings.system.embedding.switch_width == raw["system"]["embedding"]["switch_width"]
    assert isinstance(settings.system.embedding, st.EmbeddingSettings)
    assert settings.system.structure == raw["system"]["structure"]
    assert settings.production.cv_distances[0].selection1 == raw["production"]["cv_distances"][0]["selection1"]
    assert isinstance(settings.al.temperatures, tuple)


def test_demo_values_reach_the_settings() -> None:
    s = st.Settings.from_config(load_config(ROOT / "config" / "config.yaml"))
    assert (s.training.cutoff, s.system.embedding.cutoff, s.system.embedding.switch_width) == (5.0, 8.0, 1.5)
    assert s.sampling.metadynamics.plumed.startswith("phi: TORSION ATOMS=1,2,3,4")
    assert (s.sampling.xtb_md.timestep, s.sampling.xtb_md.temperature, s.sampling.xtb_md.friction) == (0.5, 300.0, 0.01)
    assert s.al.temperatures == (300.0, 350.0, 400.0) and s.al.bias.kind == "none" and s.al.initial == "ground_state"
    assert s.labeling.level.label == "hf/6-31g" and s.excited.level.method == "b3lyp"
    assert s.sampling.adaptive.cvs == ((0, 1, 2, 3), (0, 1, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.training.lr = 1.0  # type: ignore[misc]


def test_missing_and_unknown_keys_name_the_section() -> None:
    al = config_with()["al"]
    with pytest.raises(st.SettingsError, match=r"al\.bias: missing key\(s\) \['width'\]; unknown key\(s\) \['widht'\]"):
        st.ALSettings.from_dict({**al, "bias": {**{k: v for k, v in al["bias"].items() if k != "width"}, "widht": 0.02}})
    with pytest.raises(st.SettingsError, match=r"^training: missing key\(s\) \['bootstrap'\]"):
        st.TrainingSettings.from_dict({k: v for k, v in config_with()["training"].items() if k != "bootstrap"})
    level = config_with()["excited"]["level"]
    with pytest.raises(st.SettingsError, match=r"excited\.level: unknown key\(s\) \['xc'\]"):
        st.LevelSettings.from_dict({**level, "xc": "pbe"}, "excited.level")


def test_the_bright_state_al_mapping_is_al_settings() -> None:
    """The excited-state rules pass al updated with excited.al: the same ALSettings keys."""
    config = config_with()
    merged = st.ALSettings.from_dict(st.bright_al_section(config["al"], config["excited"]["al"]))
    assert merged.initial == "wigner" and merged.temperature == config["al"]["temperature"]
