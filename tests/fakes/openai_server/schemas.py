"""JSON Schemas in structured-output requests: the default instance the fake answers, and the checks (of JSON
Schema itself: strict mode's subset is ``strict``).

The default instance is deterministic and small: ``null`` wherever the schema allows it, else ``const``, the
first ``enum`` value, the first ``anyOf``/``oneOf`` branch, the minimum of a number (0 without one), one array
item (or ``minItems``), ``"x"`` for a string (a sample value for the common formats), ``false``, and every
property of an object. Whatever the fake answers is validated with ``jsonschema``: a schema this generator
cannot satisfy (a ``pattern``, say) or a test's reply that does not match fails loudly instead of sending an
answer the real provider never would.
"""

from __future__ import annotations

import math

from jsonschema import Draft202012Validator, FormatChecker, SchemaError, exceptions, validators

MAX_DEPTH = 32
FORMAT_SAMPLES = {
    "date": "2000-01-01",
    "date-time": "2000-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "x@example.com",
    "uri": "https://example.com/x",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


class SchemaProblem(ValueError):
    """A schema that is not valid JSON Schema, or an instance that does not match its schema."""


def check_schema(schema: dict) -> None:
    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as error:
        raise SchemaProblem(f"not a valid JSON Schema: {error.message}") from None


def check_instance(instance: object, schema: dict) -> None:
    validator = _validator_class(schema)(schema, format_checker=FormatChecker())
    error = exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise SchemaProblem(f"{error.message} at {where}")


def example_instance(schema: dict) -> object:
    return _example(schema, schema, 0)


def instance_saying(schema: dict, text: str) -> object:
    """An instance of ``schema`` that says ``text``: ``text`` where an enum offers it (else its first value) or
    where text goes, the first branch of a union that is not null, a number's minimum (0), true, one array item,
    every property of an object.  A model that always says the same thing, however it is asked."""
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        return instance_saying(options[0], text) if options else None
    if "enum" in schema:
        return text if text in schema["enum"] else schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: instance_saying(child, text) for name, child in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [instance_saying(schema.get("items") or {}, text)]
    if kind in ("number", "integer"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    return text


def _validator_class(schema: dict) -> type:
    return validators.validator_for(schema, default=Draft202012Validator)


def _resolve(ref: str, root: dict) -> dict:
    if not ref.startswith("#"):
        raise SchemaProblem(f"the fake resolves only local $ref, not {ref!r}")
    node: object = root
    for part in filter(None, ref[1:].split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _allows_null(node: dict) -> bool:
    if "enum" in node or "const" in node:
        return None in node.get("enum", []) or ("const" in node and node["const"] is None)
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    branches = node.get("anyOf") or node.get("oneOf") or []
    return any(isinstance(branch, dict) and _allows_null(branch) for branch in branches) or not any(
        key in node for key in ("type", "properties", "items", "$ref", "allOf", "anyOf", "oneOf")
    )


def _example(node: dict, root: dict, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise SchemaProblem("the schema nests deeper than the fake generates; return the instance from reply")
    if "$ref" in node:
        return _example(_resolve(node["$ref"], root), root, depth + 1)
    if _allows_null(node):
        return None
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][0]
    if node.get("anyOf") or node.get("oneOf"):
        return _example((node.get("anyOf") or node.get("oneOf"))[0], root, depth + 1)
    if node.get("allOf"):
        merged = {key: value for part in node["allOf"] for key, value in part.items()}
        return _example(merged | {key: value for key, value in node.items() if key != "allOf"}, root, depth + 1)
    kind = node.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in node:
        return {name: _example(child, root, depth + 1) for name, child in node.get("properties", {}).items()}
    if kind == "array" or "items" in node:
        return _example_array(node, root, depth)
    if kind in ("integer", "number"):
        return _example_number(node, integer=kind == "integer")
    if kind == "boolean":
        return False
    if kind == "string":
        sample = FORMAT_SAMPLES.get(node.get("format"), "x")
        return sample.ljust(node.get("minLength", 0), "x")[: node.get("maxLength", len(sample))]
    raise SchemaProblem(f"the fake cannot make an instance of {node!r}; return the instance from reply")


def _example_array(node: dict, root: dict, depth: int) -> list:
    prefix = [_example(child, root, depth + 1) for child in node.get("prefixItems", [])]
    count = min(max(1, node.get("minItems", 0)), node.get("maxItems", math.inf)) - len(prefix)
    items = node.get("items")
    if not isinstance(items, dict) or count <= 0:
        return prefix
    while "$ref" in items:
        items = _resolve(items["$ref"], root)
    if "enum" in items:  # distinct values, so that uniqueItems holds
        return prefix + [items["enum"][i % len(items["enum"])] for i in range(count)]
    return prefix + [_example(items, root, depth + 1) for _ in range(count)]


def _example_number(node: dict, *, integer: bool) -> int | float:
    if "minimum" in node:
        value = node["minimum"]
    elif "exclusiveMinimum" in node:
        value = node["exclusiveMinimum"] + 1
    else:
        value = min(0, node.get("maximum", 0))
    step = node.get("multipleOf")
    if step:
        value = math.ceil(value / step) * step
    if integer:
        return math.ceil(value)
    return value
