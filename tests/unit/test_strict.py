import pytest

from shared.domain.labeling.strict import nullable, to_strict
from tests.fakes.openai_server.strict import strict_problems


def obj(**properties):
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def test_a_strict_schema_passes():
    schema = obj(
        label={"type": "string", "enum": ["a", "b"], "description": "d"},
        maybe={"anyOf": [{"type": "integer", "minimum": 1, "maximum": 5}, {"type": "null"}]},
        union={"type": ["string", "null"]},
        spans={"type": "array", "items": obj(text={"type": "string", "pattern": "^x"}), "minItems": 0},
        when={"type": "string", "format": "date-time"},
        fixed={"const": "x"},
    )
    assert strict_problems(schema) == []


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"anyOf": [obj(a={"type": "string"})]}, "schema must be a JSON Schema of 'type: \"object\"'"),
        ({"type": "array", "items": {"type": "string"}}, "schema must be a JSON Schema of 'type: \"object\"'"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, "additionalProperties"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": [], "additionalProperties": False},
            "'required' is required to be supplied",
        ),
        (
            {"type": "object", "properties": {}, "required": ["a"], "additionalProperties": False},
            "'required' must list every property exactly once",
        ),
        (obj(a={"oneOf": [{"type": "string"}, {"type": "integer"}]}), "keyword 'oneOf' is not supported"),
        (obj(a={"type": "array", "items": {"type": "string"}, "uniqueItems": True}), "'uniqueItems' is not supported"),
        (obj(a={"type": "string", "default": "x"}), "'default' is not supported"),
        (obj(a={"type": "string", "minLength": 1}), "'minLength' is not supported"),
        (obj(a={"allOf": [{"type": "string"}]}), "'allOf' is not supported"),
        (obj(a={"type": "string", "format": "uri"}), "format 'uri' is not supported"),
        (obj(a={"type": "string", "minimum": 1}), "'minimum' is not supported"),
        (obj(a={"type": "array"}), "an array needs an items schema"),
        (obj(a={"type": "tuple"}), "type 'tuple' is not one of"),
        (obj(a={"description": "no type"}), "no type"),
        (obj(a={"type": "string", "enum": []}), "enum must be a non-empty list"),
        (
            obj(a={"type": "object", "properties": {}, "required": []}),
            "'additionalProperties' is required to be supplied and to be false",
        ),
    ],
)
def test_each_rule_is_enforced(schema, message):
    assert any(message in violation for violation in strict_problems(schema)), strict_problems(schema)


def test_limits_on_size_nesting_and_enums():
    deep = {"type": "string"}
    for _ in range(10):
        deep = obj(x=deep)
    assert any("nest 11 levels" in v for v in strict_problems(obj(root=deep)))
    assert strict_problems(obj(root=obj(x=obj(x={"type": "string"})))) == []

    many = obj(**{f"p{i}": {"type": "string"} for i in range(5001)})
    assert any("5001 object properties" in v for v in strict_problems(many))

    enums = obj(a={"type": "string", "enum": [f"v{i}" for i in range(600)]}, b={"enum": [f"w{i}" for i in range(401)]})
    assert any("but received 1001" in v for v in strict_problems(enums))

    long_values = [f"{i:04d}" + "x" * 60 for i in range(251)]  # 251 values, 16,064 characters
    assert any(
        "enum values with more than 250 values" in v
        for v in strict_problems(obj(a={"type": "string", "enum": long_values}))
    )
    assert strict_problems(obj(a={"type": "string", "enum": long_values[:250]})) == []

    huge = obj(a={"type": "string", "enum": ["y" * 121_000]})
    assert any("characters of names and values" in v for v in strict_problems(huge))


def test_rewrite_makes_an_sdk_like_schema_strict():
    sdk_like = {
        "type": "object",
        "properties": {
            "choice": {"type": "string", "enum": ["a"], "description": "pick"},
            "many": {"type": "array", "items": {"type": "string", "enum": ["a"]}, "uniqueItems": True},
            "spans": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["start", "labels"],
                    "properties": {
                        "start": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "number", "minimum": 0}]},
                        "labels": {"type": "array", "items": {"type": "string"}},
                        "text": {"type": "string"},
                    },
                },
            },
            "must": {"type": "integer"},
        },
        "required": ["must"],
    }
    strict = to_strict(sdk_like)
    assert strict_problems(strict) == []
    assert strict["required"] == ["choice", "many", "spans", "must"]
    assert strict["properties"]["choice"] == {
        "anyOf": [{"type": "string", "enum": ["a"]}, {"type": "null"}],
        "description": "pick",
    }
    assert strict["properties"]["must"] == {"type": "integer"}
    item = strict["properties"]["spans"]["anyOf"][0]["items"]
    assert item["properties"]["text"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert item["properties"]["start"] == {
        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "number", "minimum": 0}]
    }
    assert "uniqueItems" not in strict["properties"]["many"]["anyOf"][0]
    assert sdk_like["properties"]["many"]["uniqueItems"] is True  # the input is left alone


def test_nullable_is_idempotent_and_keeps_the_description():
    once = nullable({"type": "integer", "description": "n"})
    assert once == {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "n"}
    assert nullable(once) == once
