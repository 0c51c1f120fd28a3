import pytest

from shared.domain.labeling.schema import answer_instructions, answer_schema, task_instructions
from shared.domain.labeling.spec import parse_labeling_config
from tests.fakes.openai_server.strict import strict_problems


def spec_with(controls: str, objects: str = '<Text name="text" value="$text"/>'):
    return parse_labeling_config(f'<View>{objects}<TextArea name="prompt" toName="text"/>{controls}</View>', "prompt")


def field_schema(controls: str, name: str, data=None, objects: str = '<Text name="text" value="$text"/>'):
    schema = answer_schema(spec_with(controls, objects), data or {})
    assert strict_problems(schema) == []
    return schema["properties"][name]


def without_description(node):
    return {key: value for key, value in node.items() if key != "description"}


def test_single_choice_is_a_nullable_enum_of_the_shown_values():
    node = field_schema(
        '<Choices name="c" toName="text"><Choice value="A"/><Choice value="B" alias="b"/></Choices>', "c"
    )
    assert without_description(node) == {"anyOf": [{"type": "string", "enum": ["A", "B"]}, {"type": "null"}]}
    assert "`text`" in node["description"]


def test_required_single_choice_is_not_nullable():
    node = field_schema('<Choices name="c" toName="text" required="true"><Choice value="A"/></Choices>', "c")
    assert without_description(node) == {"type": "string", "enum": ["A"]}


def test_multiple_choice_is_an_array_without_unique_items():
    node = field_schema(
        '<Choices name="c" toName="text" choice="multiple"><Choice value="A"/><Choice value="B"/></Choices>', "c"
    )
    assert without_description(node) == {
        "anyOf": [{"type": "array", "items": {"type": "string", "enum": ["A", "B"]}}, {"type": "null"}]
    }


def test_several_choice_groups_each_get_a_field():
    spec = spec_with(
        '<Choices name="a" toName="text"><Choice value="1"/></Choices>'
        '<Choices name="b" toName="text" choice="multiple"><Choice value="2"/></Choices>'
    )
    schema = answer_schema(spec, {})
    assert schema["required"] == ["a", "b"] and strict_problems(schema) == []


def test_dynamic_choices_take_their_enum_from_the_task():
    controls = '<Choices name="c" toName="text" value="$options"/><TextArea name="t" toName="text"/>'
    node = field_schema(controls, "c", {"options": [{"value": "Yes"}, {"value": "No"}]})
    assert node["anyOf"][0]["enum"] == ["Yes", "No"]
    without_options = answer_schema(spec_with(controls), {"options": []})
    assert list(without_options["properties"]) == ["t"]
    assert strict_problems(without_options) == []


def test_spans_quote_the_text_with_a_label_and_a_start_hint():
    node = field_schema('<Labels name="ner" toName="text"><Label value="PER"/><Label value="ORG"/></Labels>', "ner")
    item = node["anyOf"][0]["items"]
    assert item["required"] == ["text", "label", "start"] and item["additionalProperties"] is False
    assert item["properties"]["label"] == {"type": "string", "enum": ["PER", "ORG"]}
    assert "exact text as written" in item["properties"]["text"]["description"]
    assert {"type": "null"} in item["properties"]["start"]["anyOf"]


def test_paragraph_spans_name_the_utterance():
    objects = '<Text name="text" value="$text"/><Paragraphs name="chat" value="$chat"/>'
    node = field_schema(
        '<ParagraphLabels name="slots" toName="chat"><Label value="City"/></ParagraphLabels>', "slots", objects=objects
    )
    item = node["anyOf"][0]["items"]
    assert item["required"] == ["paragraph", "text", "label"]
    assert item["properties"]["paragraph"]["type"] == "integer"


def test_taxonomy_offers_its_paths():
    controls = """<Taxonomy name="topic" toName="text">
      <Choice value="Sport"><Choice value="Tennis"/><Choice value="Golf"/></Choice><Choice value="Art"/></Taxonomy>"""
    node = field_schema(controls, "topic")
    assert node["anyOf"][0]["items"]["enum"] == ["Sport / Tennis", "Sport / Golf", "Sport", "Art"]
    leafs = field_schema(
        controls.replace('toName="text"', 'toName="text" leafsOnly="true" pathSeparator=": "'), "topic"
    )
    assert leafs["anyOf"][0]["items"]["enum"] == ["Sport: Tennis", "Sport: Golf", "Art"]


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        ('<Rating name="x" toName="text" maxRating="10"/>', {"type": "integer", "minimum": 1, "maximum": 10}),
        ('<Rating name="x" toName="text"/>', {"type": "integer", "minimum": 1, "maximum": 5}),
        ('<Number name="x" toName="text" min="0" max="9"/>', {"type": "number", "minimum": 0.0, "maximum": 9.0}),
        ('<Number name="x" toName="text"/>', {"type": "number"}),
        ('<TextArea name="x" toName="text"/>', {"type": "string"}),
    ],
)
def test_scalar_tags_are_nullable(control, expected):
    node = field_schema(control, "x")
    assert node["anyOf"][0] == expected and node["anyOf"][-1] == {"type": "null"}


def test_pairwise_is_left_or_right():
    objects = '<Text name="text" value="$text"/><Text name="b" value="$b"/>'
    node = field_schema('<Pairwise name="pw" toName="text,b"/>', "pw", objects=objects)
    assert node["anyOf"][0]["enum"] == ["left", "right"]
    assert '"left" for `text`' in node["description"] and '"right" for `b`' in node["description"]


def test_too_many_enum_values_turn_the_largest_field_into_a_string():
    many = "".join(f'<Label value="L{i}"/>' for i in range(900))
    controls = f'<Labels name="ner" toName="text">{many}</Labels><Choices name="c" toName="text">'
    controls += "".join(f'<Choice value="C{i}"/>' for i in range(200)) + "</Choices>"
    schema = answer_schema(spec_with(controls), {})
    assert strict_problems(schema) == []
    assert "enum" not in schema["properties"]["ner"]["anyOf"][0]["items"]["properties"]["label"]
    assert len(schema["properties"]["c"]["anyOf"][0]["enum"]) == 200


def test_instructions_describe_every_field_and_dynamic_options_go_with_the_task():
    spec = spec_with(
        '<Choices name="c" toName="text"><Choice value="sports"/><Choice value="politics"/></Choices>'
        '<Labels name="ner" toName="text"><Label value="PER"/></Labels>'
        '<Choices name="d" toName="text" value="$options"/>'
    )
    text = answer_instructions(spec)
    assert text.splitlines()[0] == "Answer with one JSON object that has these fields:"
    assert "\"c\": the label that applies to `text`: one of ['sports', 'politics']" in text
    assert "exact text as written" in text and "['PER']" in text
    assert '"d": the label that applies to `text`: one of the options listed with the task' in text
    assert task_instructions(spec, {"options": ["x", "y"]}) == "Options for \"d\": ['x', 'y']"
    assert task_instructions(spec, {}) is None
