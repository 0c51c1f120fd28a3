"""OpenAI's strict structured-output subset of JSON Schema: the rewrite into it and a checker of it.

The rules, as OpenAI documents them ("Structured Outputs: supported schemas",
https://developers.openai.com/api/docs/guides/structured-outputs#supported-schemas, limits as raised in 2025):

- the root is an object, not ``anyOf``; every object lists all its properties in ``required`` and sets
  ``additionalProperties: false`` (an optional value is a union with ``null``);
- supported: types string, number, boolean, integer, object, array, null, ``enum``, ``const``, ``anyOf``
  (each branch itself in the subset), ``$ref``/``$defs``; strings may use ``pattern`` and ``format``
  (date-time, time, date, duration, email, hostname, ipv4, ipv6, uuid), numbers ``multipleOf``,
  ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, arrays ``minItems``/``maxItems``;
  ``title`` and ``description`` are annotations;
- not supported: ``allOf``, ``not``, ``if``/``then``/``else``, ``dependentRequired``, ``dependentSchemas``,
  and anything not listed above (``oneOf``, ``uniqueItems``, ``default``, ``minLength`` … are refused);
- at most 5,000 object properties in all and 10 levels of object nesting; at most 120,000 characters in
  all property names, definition names, enum values and const values; at most 1,000 enum values in all,
  and a single string enum of more than 250 values may total at most 15,000 characters.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

MAX_PROPERTIES = 5000
MAX_OBJECT_DEPTH = 10
MAX_TOTAL_STRING = 120_000
MAX_ENUM_VALUES = 1000
LARGE_ENUM = 250
MAX_LARGE_ENUM_STRING = 15_000

TYPES = {"string", "number", "boolean", "integer", "object", "array", "null"}
FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
ANNOTATIONS = {"title", "description"}
GENERAL = {"type", "enum", "const", "anyOf", "$ref", "$defs", "definitions"}
BY_TYPE = {
    "string": {"pattern", "format"},
    "number": {"multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "integer": {"multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "array": {"items", "minItems", "maxItems"},
    "object": {"properties", "required", "additionalProperties"},
    "boolean": set(),
    "null": set(),
}
_ALL_KEYWORDS = ANNOTATIONS | GENERAL | set().union(*BY_TYPE.values())
_DROPPED_BY_REWRITE = {"uniqueItems", "default", "minLength", "maxLength", "examples", "$schema", "$id"}


def _types_of(node: dict[str, Any]) -> set[str]:
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {item for item in declared if isinstance(item, str)}
    return set()


def _walk(node: Any, path: str, depth: int) -> Iterator[tuple[str, dict[str, Any], int]]:
    """Every subschema with its path and object nesting depth (the root object is level 1)."""
    if not isinstance(node, dict):
        return
    yield path, node, depth
    inner = depth + (1 if "object" in _types_of(node) else 0)
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.properties.{name}", inner)
    if "items" in node:
        yield from _walk(node["items"], f"{path}.items", inner)
    for index, branch in enumerate(node.get("anyOf") or []):
        yield from _walk(branch, f"{path}.anyOf[{index}]", depth)
    for key in ("$defs", "definitions"):
        for name, child in (node.get(key) or {}).items():
            yield from _walk(child, f"{path}.{key}.{name}", 1)


def _node_violations(path: str, node: dict[str, Any]) -> list[str]:
    found: list[str] = []
    types = _types_of(node)
    if "type" in node and (not types or not types <= TYPES):
        found.append(f"{path}: type {node['type']!r} is not one of {sorted(TYPES)}")
    if not types and not ({"anyOf", "enum", "const", "$ref"} & node.keys()):
        found.append(f"{path}: no type (nor anyOf, enum, const or $ref)")
    allowed = ANNOTATIONS | GENERAL | set().union(*(BY_TYPE.get(kind, set()) for kind in types))
    if not types:
        allowed = _ALL_KEYWORDS
    found.extend(f"{path}: keyword {key!r} is not supported" for key in node if key not in allowed)
    if "format" in node and node["format"] not in FORMATS:
        found.append(f"{path}: format {node['format']!r} is not supported")
    if "object" in types:
        properties = node.get("properties")
        if not isinstance(properties, dict):
            found.append(f"{path}: an object needs properties")
            properties = {}
        if node.get("additionalProperties") is not False:
            found.append(f"{path}: additionalProperties must be false")
        if set(node.get("required") or []) != set(properties) or len(node.get("required") or []) != len(properties):
            found.append(f"{path}: required must list every property exactly once")
    if "array" in types and not isinstance(node.get("items"), dict):
        found.append(f"{path}: an array needs an items schema")
    if "anyOf" in node and (not isinstance(node["anyOf"], list) or not node["anyOf"]):
        found.append(f"{path}: anyOf must be a non-empty list")
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        found.append(f"{path}: enum must be a non-empty list")
    return found


def strict_violations(schema: Any) -> list[str]:
    """Everything in ``schema`` that OpenAI's strict mode would refuse; empty when it is accepted."""
    if not isinstance(schema, dict):
        return ["the schema must be a JSON object"]
    found: list[str] = []
    if "anyOf" in schema or _types_of(schema) != {"object"}:
        found.append("$: the root must be an object (type 'object', not anyOf)")
    properties = enum_values = string_length = deepest = 0
    for path, node, depth in _walk(schema, "$", 1):
        found.extend(_node_violations(path, node))
        if "object" in _types_of(node):
            deepest = max(deepest, depth)
        names = list((node.get("properties") or {}).keys())
        properties += len(names)
        string_length += sum(len(name) for name in names)
        for key in ("$defs", "definitions"):
            string_length += sum(len(name) for name in node.get(key) or {})
        enum = node.get("enum")
        values = enum if isinstance(enum, list) else []
        enum_values += len(values)
        texts = [value for value in values if isinstance(value, str)]
        string_length += sum(len(text) for text in texts)
        if isinstance(node.get("const"), str):
            string_length += len(node["const"])
        if len(texts) > LARGE_ENUM and sum(len(text) for text in texts) > MAX_LARGE_ENUM_STRING:
            found.append(
                f"{path}: an enum of more than {LARGE_ENUM} strings may total at most "
                f"{MAX_LARGE_ENUM_STRING} characters"
            )
    if deepest > MAX_OBJECT_DEPTH:
        found.append(f"$: objects nest {deepest} levels deep, at most {MAX_OBJECT_DEPTH} are allowed")
    if properties > MAX_PROPERTIES:
        found.append(f"$: {properties} object properties, at most {MAX_PROPERTIES} are allowed")
    if enum_values > MAX_ENUM_VALUES:
        found.append(f"$: {enum_values} enum values, at most {MAX_ENUM_VALUES} are allowed")
    if string_length > MAX_TOTAL_STRING:
        found.append(f"$: {string_length} characters of names and values, at most {MAX_TOTAL_STRING} are allowed")
    return found


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null: how strict mode says "may stay empty"."""
    if "anyOf" in schema:
        branches = schema["anyOf"]
        if any(_types_of(branch) == {"null"} for branch in branches):
            return schema
        return {**schema, "anyOf": [*branches, {"type": "null"}]}
    description = schema.get("description")
    inner = {key: value for key, value in schema.items() if key != "description"}
    wrapped: dict[str, Any] = {"anyOf": [inner, {"type": "null"}]}
    if description:
        wrapped["description"] = description
    return wrapped


def to_strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a JSON schema (such as the SDK's ``to_json_schema()``) into the strict subset.

    Every object gets all its properties required and ``additionalProperties: false``; a property that
    was not required becomes nullable (the model sends null instead of leaving it out).  ``oneOf`` becomes ``anyOf``;
    ``uniqueItems``, ``default``, ``minLength``/``maxLength`` and the like are dropped (what they said is
    checked when the answer becomes regions).
    """
    return _rewrite_schema(copy.deepcopy(schema))


def _rewrite(node: Any) -> Any:
    return _rewrite_schema(node) if isinstance(node, dict) else node


def _rewrite_schema(node: dict[str, Any]) -> dict[str, Any]:
    node = {key: value for key, value in node.items() if key not in _DROPPED_BY_REWRITE}
    if "oneOf" in node:
        node["anyOf"] = [*node.pop("oneOf"), *node.get("anyOf", [])]
    if "anyOf" in node:
        node["anyOf"] = [_rewrite(branch) for branch in node["anyOf"]]
        if "type" in node and len(node) > 1:  # a type beside anyOf applies to every branch
            node.pop("type")
    if "items" in node:
        node["items"] = _rewrite(node["items"])
    if "properties" in node or "object" in _types_of(node):
        properties = {name: _rewrite(child) for name, child in (node.get("properties") or {}).items()}
        required = set(node.get("required") or [])
        for name, child in properties.items():
            if name not in required:
                properties[name] = nullable(child)
        node["type"] = "object"
        node["properties"] = properties
        node["required"] = list(properties)
        node["additionalProperties"] = False
    for key in ("$defs", "definitions"):
        if key in node:
            node[key] = {name: _rewrite(child) for name, child in node[key].items()}
    return node
