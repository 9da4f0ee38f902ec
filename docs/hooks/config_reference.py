"""The configuration reference, rendered from the config schema at build time so that it cannot
drift from what `htweather.config.load_config` accepts.

As an MkDocs hook (`hooks:` in mkdocs.yml) it replaces the line `<!-- config-reference -->` of a
page with the rendered reference. `render(schema)` is plain Python, for the tests too:

    from config_reference import load_schema, render
    markdown = render(load_schema())
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"  # a link to src/htweather/config.schema.yaml
MARKER = "<!-- config-reference -->"
NAME = "<name>"  # a key you choose: a model's name, a variable's name


def load_schema(path: Path = SCHEMA) -> dict:
    return yaml.safe_load(Path(path).read_text())


def resolve(node: dict, root: dict) -> dict:
    """`node` with a local `$ref` (#/$defs/...) merged in; the node's own keys win."""
    while isinstance(node, dict) and "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def entries(node: dict, root: dict, path: str = "") -> Iterator[tuple[str, dict]]:
    """(dotted key, schema as written) for every key under `node`, depth first: properties, the
    values of maps (additionalProperties / patternProperties as `<name>`), the objects among
    oneOf / anyOf alternatives, and objects inside arrays (`key[]`)."""
    node = resolve(node, root)
    for name, child in node.get("properties", {}).items():
        key = f"{path}.{name}" if path else name
        yield key, child
        yield from entries(child, root, key)
    values = [node.get("additionalProperties")] + list(node.get("patternProperties", {}).values())
    for child in values:
        if isinstance(child, dict):
            key = f"{path}.{NAME}" if path else NAME
            yield key, child
            yield from entries(child, root, key)
    for alternative in node.get("oneOf", []) + node.get("anyOf", []):
        alternative = resolve(alternative, root)
        if "properties" in alternative or isinstance(alternative.get("additionalProperties"), dict):
            yield from entries(alternative, root, path)
    items = node.get("items")
    if isinstance(items, dict):
        items = resolve(items, root)
        if "properties" in items or isinstance(items.get("additionalProperties"), dict):
            yield from entries(items, root, f"{path}[]")


def literal(value) -> str:
    """A value as one would write it in the YAML config."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()


def bounds(node: dict) -> str:
    parts = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in node:
            parts.append(f"{sign} {node[key]}")
    return ", ".join(parts)


def shared(node: dict, root: dict) -> str | None:
    """The name of the described shared value (`$defs`) that `node` refers to, if any."""
    ref = node.get("$ref", "") if isinstance(node, dict) else ""
    name = ref.removeprefix("#/$defs/")
    if ref.startswith("#/$defs/") and root.get("$defs", {}).get(name, {}).get("description"):
        return name
    return None


def describe_type(node: dict, root: dict, link: bool = True) -> str:
    """Type, allowed values and bounds, in words; a described shared value by its name."""
    name = shared(node, root)
    if name and link:
        return f"[{name}](#value-{name})"
    node = resolve(node, root)
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(describe_type(a, root) for a in node.get("oneOf", []) + node.get("anyOf", []))
    types = node.get("type", "any")
    types = [types] if isinstance(types, str) else list(types)
    words = []
    for kind in types:
        if kind == "array":
            text = "list"
            if node.get("minItems") is not None and node.get("minItems") == node.get("maxItems"):
                text += f" ({node['minItems']} items)"
            elif node.get("minItems"):
                text += f" (at least {node['minItems']} item{'s' if node['minItems'] > 1 else ''})"
            if isinstance(node.get("items"), dict):
                text += f" of {describe_type(node['items'], root)}"
            words.append(text)
        elif kind == "object" and "properties" not in node and isinstance(node.get("additionalProperties"), dict):
            words.append(f"map of `{NAME}` to {describe_type(node['additionalProperties'], root)}")
        else:
            words.append(kind)
    text = " or ".join(words)
    if "enum" in node:
        text = ("one of " if len(node["enum"]) > 1 else "") + ", ".join(f"`{v}`" for v in node["enum"])
    limits = bounds(node)
    if limits:
        text += f" ({limits})"
    if "pattern" in node and node.get("type") == "string":
        text += f" matching `{node['pattern']}`"
    return text


def sentences(parts: list[str]) -> str:
    parts = [" ".join(p.split()) for p in parts if p and p.strip()]
    return " ".join(p if p.endswith((".", ":")) or i == len(parts) - 1 else p + "." for i, p in enumerate(parts))


def description(node: dict, root: dict) -> str:
    """The node's own description (a shared value's is on its own, linked), the rules on its keys."""
    raw = node
    node = resolve(node, root)
    parts = []
    if raw.get("description") or (node.get("description") and not shared(raw, root)):
        parts.append(node["description"])
    if not parts:  # e.g. one nu or one per variable: the alternatives carry the words
        for alternative in node.get("oneOf", []) + node.get("anyOf", []):
            if not shared(alternative, root) and resolve(alternative, root).get("description"):
                parts.append(f"{describe_type(alternative, root)}: {resolve(alternative, root)['description']}")
    names = node.get("propertyNames")
    if names:
        rule = [f"match `{names['pattern']}`"] if "pattern" in names else []
        if "enum" in names.get("not", {}):
            rule.append("are not " + ", ".join(f"`{v}`" for v in names["not"]["enum"]))
        parts.append(f"Names {' and '.join(rule)}" + (f": {names['description']}." if names.get("description") else "."))
    if node.get("required"):
        parts.append("Required keys: " + ", ".join(f"`{k}`" for k in node["required"]) + ".")
    return sentences(parts)


def cell(text: str) -> str:
    """Text safe in a Markdown table cell (code spans and links kept)."""
    out = []
    for i, piece in enumerate(re.split(r"(`[^`]*`|\[[^\]]*\]\(#[^)]*\))", text)):
        if i % 2 == 0:  # outside code spans and links: no emphasis, no HTML
            piece = piece.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_").replace("<", "&lt;")
            piece = piece.replace("|", "\\|")  # a code span's pipes do not split a table row
        out.append(piece)
    return "".join(out)


def row(key: str, node: dict, parent: dict, root: dict) -> str:
    name = key.rsplit(".", 1)[-1]
    resolved = resolve(node, root)
    if name in parent.get("required", []):
        default = "required"
    else:
        default = f"`{literal(resolved['default'])}`" if "default" in resolved else ""
    return f"| `{key}` | {cell(describe_type(node, root))} | {default} | {cell(description(node, root))} |"


HEADER = "| key | type | default | description |\n| --- | --- | --- | --- |"


def render(schema: dict) -> str:
    """Markdown: the shared values (nu, date), the top-level scalars, then one section per
    top-level object with a table of every key under it, by its dotted path."""
    lines = ["## Shared values", ""]
    for name, node in schema.get("$defs", {}).items():
        if node.get("description"):
            lines += [f"### {name} {{#value-{name}}}", "", cell(" ".join(node["description"].split())), "",
                      f"Allowed: {cell(describe_type(node, schema, link=False))}.", ""]
    parents = {"": resolve(schema, schema)}
    for key, node in entries(schema, schema):
        parents[key] = resolve(node, schema)
    scalars, sections = [], []
    for name, child in schema["properties"].items():
        child = resolve(child, schema)
        if "properties" in child or isinstance(child.get("additionalProperties"), dict):
            sections.append(name)
        else:
            scalars.append(name)
    if scalars:
        lines += ["## Top level", "", HEADER]
        lines += [row(name, schema["properties"][name], schema, schema) for name in scalars]
        lines.append("")
    for name in sections:
        lines += [f"## {name}", "", HEADER, row(name, schema["properties"][name], schema, schema)]
        for key, child in entries(schema["properties"][name], schema, name):
            lines.append(row(key, child, parents.get(key.rsplit(".", 1)[0], {}), schema))
        lines.append("")
    return "\n".join(lines)


# MkDocs hook ---------------------------------------------------------------------------------

def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    schema_path = Path(config["config_file_path"]).parent / "workflow" / "schemas" / "config.schema.yaml"
    return markdown.replace(MARKER, render(load_schema(schema_path)))
