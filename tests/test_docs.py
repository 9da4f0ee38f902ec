"""The documentation: the configuration reference that the site renders from the config schema
(docs/hooks/config_reference.py) has a row for every key the schema defines, and the site builds
it. The walk over the schema here is independent of the renderer's, so a key the renderer skips
fails the test."""

import importlib.util

import yaml

from conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
HOOK = REPO / "docs" / "hooks" / "config_reference.py"


def reference_module():
    spec = importlib.util.spec_from_file_location("config_reference", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema_keys(node: dict, root: dict, path: str, name: str) -> set[str]:
    """Every dotted key under `node`: properties, the values of maps (additionalProperties and
    patternProperties, written `name`), objects among oneOf / anyOf / allOf alternatives, and
    objects inside arrays (`key[]`); `$ref`s to `#/$defs/...` followed."""
    if "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    keys = set()

    def child(key: str, schema) -> None:
        if isinstance(schema, dict):
            keys.add(key)
            keys.update(schema_keys(schema, root, key, name))

    for prop, schema in node.get("properties", {}).items():
        child(f"{path}.{prop}" if path else prop, schema)
    for schema in [node.get("additionalProperties"), *node.get("patternProperties", {}).values()]:
        child(f"{path}.{name}" if path else name, schema)
    for alternative in node.get("oneOf", []) + node.get("anyOf", []) + node.get("allOf", []):
        keys.update(schema_keys(alternative, root, path, name))
    if isinstance(node.get("items"), dict):
        items = schema_keys(node["items"], root, f"{path}[]", name)
        keys.update(items)
    return keys


def test_every_schema_key_is_in_the_configuration_reference():
    module = reference_module()
    schema = yaml.safe_load(SCHEMA.read_text())
    text = module.render(schema)
    keys = schema_keys(schema, schema, "", module.NAME)
    assert len(keys) > 100, f"the walk found only {len(keys)} keys"
    for key in ("training.snapshots", "training.patch", "nu_select.candidates", "data.coarsen",
                "models.<name>.kappa", "data.variables.<name>.dry_below", "training.stop.members"):
        assert key in keys
    missing = sorted(key for key in keys if f"| `{key}` |" not in text)
    assert not missing, f"keys of the schema without a row in the configuration reference: {missing}"


def test_the_reference_shows_each_key_with_its_default():
    module = reference_module()
    text = module.render(yaml.safe_load(SCHEMA.read_text()))
    assert "| `training.steps` | integer (≥ 1) or `auto` | `700` |" in text
    assert "| `nu_select.candidates` |" in text and "`[3, 5, 10, inf]`" in text
    assert "| `models.<name>.family` | one of `edm`, `flow` | required |" in text


def test_the_site_renders_the_reference_from_the_schema():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert "docs/hooks/config_reference.py" in config["hooks"]
    page = REPO / "docs" / "reference" / "configuration.md"
    assert reference_module().MARKER in page.read_text()
    pages = yaml.safe_dump(config["nav"])
    assert "reference/configuration.md" in pages
