"""OpenAI's strict structured-output subset of JSON Schema: the rewrite into it, and the enum limits that answer
schemas keep within.

The rules, as OpenAI documents them ("Structured Outputs: supported schemas",
https://developers.openai.com/api/docs/guides/structured-outputs#supported-schemas, limits as raised in 2025):
every object lists all its properties in ``required`` and sets ``additionalProperties: false`` (an optional value
is a union with ``null``); ``oneOf`` is not supported, ``anyOf`` is; ``uniqueItems``, ``default``, ``minLength``
and the like are refused; at most 1,000 enum values in all, and a single string enum of more than 250 values may
total at most 15,000 characters.  The fake OpenAI server of the tests checks the whole subset, as OpenAI does.
"""

from __future__ import annotations

import copy
from typing import Any

MAX_ENUM_VALUES = 1000
LARGE_ENUM = 250
MAX_LARGE_ENUM_STRING = 15_000

_DROPPED_BY_REWRITE = {"uniqueItems", "default", "minLength", "maxLength", "examples", "$schema", "$id"}


def types_of(node: dict[str, Any]) -> set[str]:
    """The types a (sub)schema declares: its ``type``, a name or a list of names."""
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {item for item in declared if isinstance(item, str)}
    return set()


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null: how strict mode says "may stay empty"."""
    if "anyOf" in schema:
        branches = schema["anyOf"]
        if any(types_of(branch) == {"null"} for branch in branches):
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
    if "properties" in node or "object" in types_of(node):
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
