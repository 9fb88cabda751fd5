"""Config schema: defaults, and one clear error naming the field for bad input."""

from pathlib import Path

import pytest
import yaml

from mlmm.config import ConfigError, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def test_demo_and_example_configs_validate() -> None:
    demo = load_config(ROOT / "config" / "config.yaml")
    assert demo["labeling"]["level"]["method"] == "hf"
    for path in sorted((ROOT / "config" / "examples").glob("*.yaml")):
        load_config(path)


def test_defaults_fill_missing_sections() -> None:
    cfg = validate_config({})
    assert cfg["al"]["max_iterations"] == 2
    assert cfg["training"]["n_members"] == 3
    assert cfg["sampling"]["xtb_md"]["activate"] is True


def test_wrong_type_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"myconf\.yaml: al\.max_iterations: 'two' is not of type 'integer'"):
        validate_config({"al": {"max_iterations": "two"}}, source="myconf.yaml")


def test_unknown_key_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"training\.learning_rate: unknown key"):
        validate_config({"training": {"learning_rate": 1e-3}})


def test_cross_field_rule(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"al": {"sigma_lo": 0.6, "sigma_hi": 0.5}}))
    with pytest.raises(ConfigError, match=r"c\.yaml: al\.sigma_lo/sigma_hi/sigma_stop"):
        load_config(path)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("al: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(path)


def test_config_readme_is_generated_from_schema() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "tools" / "config_doc.py")], capture_output=True, text=True, check=True).stdout
    assert (ROOT / "config" / "README.md").read_text() == out, "run: python tools/config_doc.py > config/README.md"


def test_schema_has_only_json_schema_keywords() -> None:
    """A comma in an unquoted YAML flow-mapping description silently splits it into a bogus key."""
    import yaml

    known = {"type", "default", "description", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
             "enum", "items", "properties", "additionalProperties", "required", "$schema", "title",
             "minItems", "maxItems", "minLength", "maxLength", "pattern", "oneOf", "anyOf", "const"}
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    bad = []

    def walk(node: dict, path: str) -> None:
        for key, value in node.items():
            if path.endswith(".properties"):
                walk(value, f"{path}.{key}")
                continue
            if key not in known:
                bad.append(f"{path}: {key!r}")
            if isinstance(value, dict):
                walk(value, f"{path}.{key}")

    walk(schema, "")
    assert not bad, bad


def test_metadynamics_needs_a_plumed_input() -> None:
    config = {"production": {"metadynamics": {"activate": True}}}
    with pytest.raises(ConfigError, match="production.metadynamics.plumed: activate is true"):
        validate_config(config, source="my.yaml")


def test_command_line_strings_become_typed_values() -> None:
    # what `snakemake --config al='{max_iterations: 4, sigma_lo: 0.2}' sampling='{pca: {activate: true}}'` passes
    config = {"al": {"max_iterations": "4", "sigma_lo": "0.2"}, "sampling": {"pca": {"activate": "true"}}}
    validate_config(config)
    assert config["al"]["max_iterations"] == 4 and config["al"]["sigma_lo"] == 0.2
    assert config["sampling"]["pca"]["activate"] is True
    with pytest.raises(ConfigError, match="al.max_iterations: 'two' is not of type 'integer'"):
        validate_config({"al": {"max_iterations": "two"}})
