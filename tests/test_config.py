"""Config schema: defaults, and one clear error naming the field for bad input."""

import re
from pathlib import Path

import pytest
import yaml

from conftest import DEMO_SYSTEM, _merge, config_with
from mlmm.config import SCHEMA_PATH, ConfigError, expand_schema, load_config, load_schema, validate_config

ROOT = Path(__file__).resolve().parents[1]
#: config/examples/ files that update the demo (given after it) instead of being whole configs
OVERLAYS = {"sampling_adaptive.yaml"}


def test_demo_and_example_configs_validate() -> None:
    demo = load_config(ROOT / "config" / "config.yaml")
    assert demo["labeling"]["level"]["method"] == "hf"
    for path in sorted((ROOT / "config" / "examples").glob("*.yaml")):
        if path.name in OVERLAYS:
            base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
            validate_config(_merge(base, yaml.safe_load(path.read_text())), source=str(path))
        else:
            load_config(path)


def test_defaults_fill_missing_sections() -> None:
    cfg = config_with()
    assert cfg["al"]["max_iterations"] == 2
    assert cfg["training"]["n_members"] == 3
    assert cfg["sampling"]["xtb_md"]["activate"] is True
    assert cfg["sampling"]["adaptive"]["timestep"] == 0.5  # from the shared MD block ($defs/md)


@pytest.mark.parametrize(
    "config, field",
    [({}, "system"), ({"system": {"qm_selection": "resname MOL"}}, "system.structure"),
     ({"system": {"structure": "mol.pdb"}}, "system.qm_selection")],
)
def test_a_missing_system_key_is_named(config: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"my\.yaml: {re.escape(field)}: required \(no default"):
        validate_config(config, source="my.yaml")


def test_wrong_type_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"myconf\.yaml: al\.max_iterations: 'two' is not of type 'integer'"):
        validate_config({"system": dict(DEMO_SYSTEM), "al": {"max_iterations": "two"}}, source="myconf.yaml")


def test_unknown_key_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"training\.learning_rate: unknown key"):
        config_with(training={"learning_rate": 1e-3})
    with pytest.raises(ConfigError, match=r"sampling\.xtb_md\.time_step: unknown key"):  # a section with $ref'd MD keys
        config_with(sampling={"xtb_md": {"time_step": 0.5}})


def test_the_schema_file_itself_means_what_the_expanded_one_does() -> None:
    """The $ref/unevaluatedProperties schema, read by any JSON-Schema validator, accepts and rejects
    the same configs as the expanded form mlmm validates with."""
    import jsonschema

    raw = jsonschema.Draft202012Validator(load_schema(SCHEMA_PATH))
    demo = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert not list(raw.iter_errors(demo))
    bad = _merge(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), {"al": {"frictio": 0.1}})
    assert list(raw.iter_errors(bad))
    with pytest.raises(ConfigError, match=r"al\.frictio: unknown key"):
        validate_config(bad)
    md = load_schema(SCHEMA_PATH)["$defs"]["md"]["properties"]
    expanded = expand_schema(load_schema(SCHEMA_PATH))["properties"]
    for section in (expanded["sampling"]["properties"]["xtb_md"], expanded["al"], expanded["production"],
                    expanded["excited"]["properties"]["dynamics"]):
        assert {k: section["properties"][k] for k in md} == md


def test_no_schema_default_is_specific_to_a_system() -> None:
    """A config that gives only the system gets nothing of the ethanol demo: no PLUMED CV, no
    atom-naming CV or RDF reference, no field ablation, no demo structure."""
    config = config_with(system={"structure": "data/other/mol_water.pdb", "qm_selection": "resname MOL",
                                 "force_field": ["amber14/tip3p.xml", "data/other/mol.xml"]})
    text = yaml.safe_dump(config)
    for ethanol in ("ETH", "ATOMS=", "ethanol", "data/demo"):
        assert ethanol not in text, ethanol
    assert config["sampling"]["metadynamics"]["plumed"] == "" and not config["sampling"]["metadynamics"]["activate"]
    assert config["sampling"]["adaptive"]["cvs"] == [] and config["production"]["cv_distances"] == []
    assert config["production"]["metadynamics"]["plumed"] == "" and config["production"]["rdf_reference"] is None
    assert not config["training"]["field_ablation"]["activate"]
    assert [name for name, s in config["sampling"].items() if s["activate"]] == ["xtb_md"]


@pytest.mark.parametrize(
    "sampler, field",
    [({"metadynamics": {"activate": True}}, "sampling.metadynamics.plumed"),
     ({"adaptive": {"activate": True}}, "sampling.adaptive.cvs")],
)
def test_an_active_sampler_needs_its_atom_naming_input(sampler: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"{re.escape(field)}: required when"):
        config_with(sampling=sampler)


def test_cross_field_rule(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"system": DEMO_SYSTEM, "al": {"sigma_lo": 0.6, "sigma_hi": 0.5}}))
    with pytest.raises(ConfigError, match=r"c\.yaml: al\.sigma_lo/sigma_hi/sigma_stop"):
        load_config(path)


def test_embedding_switch_width_must_fit_in_the_cutoff() -> None:
    with pytest.raises(ConfigError, match=r"system\.embedding\.switch_width: must not exceed system\.embedding\.cutoff"):
        config_with(system={"embedding": {"cutoff": 3.0, "switch_width": 4.0}})
    with pytest.raises(ConfigError, match=r"system\.embedding\.switch_width"):
        config_with(system={"embedding": {"switch_width": 0.0}})
    with pytest.raises(ConfigError, match=r"training\.field_cutoff"):  # removed: the model uses system.embedding
        config_with(training={"field_cutoff": 8.0})


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
             "minItems", "maxItems", "minLength", "maxLength", "pattern", "oneOf", "anyOf", "const",
             "$ref", "$defs", "unevaluatedProperties", "uniqueItems"}
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    bad = []

    def walk(node: dict, path: str) -> None:
        for key, value in node.items():
            if path.endswith(".properties") or path.endswith(".$defs"):
                walk(value, f"{path}.{key}")
                continue
            if key not in known:
                bad.append(f"{path}: {key!r}")
            if isinstance(value, dict):
                walk(value, f"{path}.{key}")

    walk(schema, "")
    assert not bad, bad


def test_metadynamics_needs_a_plumed_input() -> None:
    with pytest.raises(ConfigError, match="production.metadynamics.plumed: activate is true"):
        config_with(production={"metadynamics": {"activate": True}})


def test_command_line_strings_become_typed_values() -> None:
    # what `snakemake --config al='{max_iterations: 4, sigma_lo: 0.2}' sampling='{pca: {activate: true}}'` passes
    config = {"system": dict(DEMO_SYSTEM), "al": {"max_iterations": "4", "sigma_lo": "0.2", "timestep": "0.25"},
              "sampling": {"pca": {"activate": "true"}}}
    validate_config(config)
    assert config["al"]["max_iterations"] == 4 and config["al"]["sigma_lo"] == 0.2 and config["al"]["timestep"] == 0.25
    assert config["sampling"]["pca"]["activate"] is True
    with pytest.raises(ConfigError, match="al.max_iterations: 'two' is not of type 'integer'"):
        config_with(al={"max_iterations": "two"})


def test_one_section_with_its_defaults() -> None:
    """A section's defaults without a whole config (benchmarks, library users); errors name the section."""
    from mlmm.config import section_with_defaults

    training = section_with_defaults("training", {"cutoff": 4.0})
    assert training == {**config_with()["training"], "cutoff": 4.0}
    assert section_with_defaults("labeling.level", {"basis": "sto-3g"})["method"] == "hf"
    assert section_with_defaults("sampling.adaptive")["timestep"] == 0.5  # the $ref'd MD block
    with pytest.raises(ConfigError, match=r"^training\.cutof: unknown key"):
        section_with_defaults("training", {"cutof": 4.0})
    with pytest.raises(ConfigError, match=r"^labeling\.level\.conv_tol: -1\.0 is less than or equal"):
        section_with_defaults("labeling.level", {"conv_tol": -1.0})
