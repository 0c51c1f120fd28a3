"""OpenAI's strict structured-output subset of JSON Schema, as the fake enforces it: a ``strict`` schema outside it
is refused with a 400, as OpenAI refuses it, so a test that sees a 200 knows the backend sent a schema OpenAI takes.

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

Where OpenAI's refusal is known word for word (the root, ``additionalProperties``, ``required``, the enum
limits), the fake says it in those words.  The limits are the fake's own copy of OpenAI's, not the backend's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shared.domain.labeling.strict import types_of

MAX_PROPERTIES = 5000
MAX_OBJECT_DEPTH = 10
MAX_TOTAL_STRING = 120_000
MAX_ENUM_VALUES = 1000
LARGE_ENUM = 250
MAX_LARGE_ENUM_CHARS = 15_000

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

Context = tuple[str | int, ...]  # where a subschema sits, as OpenAI's messages name it: ("properties", "label")


def _walk(node: Any, context: Context, depth: int) -> Iterator[tuple[Context, dict[str, Any], int]]:
    """Every subschema with its context and object nesting depth (the root object is level 1)."""
    if not isinstance(node, dict):
        return
    yield context, node, depth
    inner = depth + (1 if "object" in types_of(node) else 0)
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, (*context, "properties", name), inner)
    if "items" in node:
        yield from _walk(node["items"], (*context, "items"), inner)
    for index, branch in enumerate(node.get("anyOf") or []):
        yield from _walk(branch, (*context, "anyOf", index), depth)
    for key in ("$defs", "definitions"):
        for name, child in (node.get(key) or {}).items():
            yield from _walk(child, (*context, key, name), 1)


def _object_problems(context: Context, node: dict[str, Any]) -> Iterator[str]:
    properties = node.get("properties")
    if not isinstance(properties, dict):
        yield f"In context={context}, an object needs properties."
        properties = {}
    if node.get("additionalProperties") is not False:
        yield f"In context={context}, 'additionalProperties' is required to be supplied and to be false."
    required = node.get("required") or []
    missing = [name for name in properties if name not in required]
    if missing:
        yield (
            f"In context={context}, 'required' is required to be supplied and to be an array including every "
            f"key in properties. Missing '{missing[0]}'."
        )
    elif set(required) != set(properties) or len(required) != len(properties):
        yield f"In context={context}, 'required' must list every property exactly once."


def _node_problems(context: Context, node: dict[str, Any]) -> Iterator[str]:
    types = types_of(node)
    if "type" in node and (not types or not types <= TYPES):
        yield f"In context={context}, type {node['type']!r} is not one of {sorted(TYPES)}."
    if not types and not ({"anyOf", "enum", "const", "$ref"} & node.keys()):
        yield f"In context={context}, the schema has no type (nor anyOf, enum, const or $ref)."
    allowed = _ALL_KEYWORDS
    if types:
        allowed = ANNOTATIONS | GENERAL | set().union(*(BY_TYPE.get(kind, set()) for kind in types))
    for key in node:
        if key not in allowed:
            yield f"In context={context}, keyword {key!r} is not supported."
    if "format" in node and node["format"] not in FORMATS:
        yield f"In context={context}, format {node['format']!r} is not supported."
    if "object" in types:
        yield from _object_problems(context, node)
    if "array" in types and not isinstance(node.get("items"), dict):
        yield f"In context={context}, an array needs an items schema."
    if "anyOf" in node and (not isinstance(node["anyOf"], list) or not node["anyOf"]):
        yield f"In context={context}, anyOf must be a non-empty list."
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        yield f"In context={context}, enum must be a non-empty list."


def strict_problems(schema: Any) -> list[str]:
    """Everything in ``schema`` that OpenAI's strict mode refuses; empty when it is accepted."""
    if not isinstance(schema, dict):
        return ["the schema must be a JSON object"]
    found: list[str] = []
    if "anyOf" in schema or types_of(schema) != {"object"}:
        found.append(f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'.")
    properties = enum_values = string_length = deepest = 0
    for context, node, depth in _walk(schema, (), 1):
        found.extend(_node_problems(context, node))
        if "object" in types_of(node):
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
        chars = sum(len(text) for text in texts)
        if len(values) > LARGE_ENUM and chars > MAX_LARGE_ENUM_CHARS:
            found.append(
                f"Expected at most {MAX_LARGE_ENUM_CHARS} total string length for enum values with more than "
                f"{LARGE_ENUM} values, but received {chars}."
            )
    if deepest > MAX_OBJECT_DEPTH:
        found.append(f"Objects nest {deepest} levels deep, at most {MAX_OBJECT_DEPTH} are allowed.")
    if properties > MAX_PROPERTIES:
        found.append(f"{properties} object properties, at most {MAX_PROPERTIES} are allowed.")
    if enum_values > MAX_ENUM_VALUES:
        found.append(
            f"Expected at most {MAX_ENUM_VALUES} enum values in total within a single schema when using structured "
            f"outputs, but received {enum_values}. Consider reducing the number of enums, or use 'strict: false' to "
            "opt out of structured outputs."
        )
    if string_length > MAX_TOTAL_STRING:
        found.append(f"{string_length} characters of names and values, at most {MAX_TOTAL_STRING} are allowed.")
    return found
