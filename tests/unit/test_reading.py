import json

import pytest

from shared.domain.answers.output_modes import AnswerFormatError
from shared.domain.answers.prose import DECLINED
from shared.domain.answers.reading import (
    EMPTY,
    NONE_CHOICE,
    STRUCTURED_DECLINE,
    Abstention,
    read_prediction,
    read_prose,
)
from shared.domain.labeling.spec import parse_labeling_config

CONFIG = """<View>
  <Text name="text" value="$text"/><Text name="other" value="$other"/>
  <TextArea name="prompt" toName="text"/>
  <Choices name="topic" toName="text">
    <Choice value="sports"/><Choice value="politics"/><Choice value="technology"/>
  </Choices>
  <Choices name="tags" toName="text" choice="multiple"><Choice value="Funny"/><Choice value="Long"/></Choices>
  <Labels name="ner" toName="text"><Label value="PER"/></Labels>
  <Taxonomy name="area" toName="text">
    <Choice value="Animals"><Choice value="Birds"/></Choice><Choice value="Plants"/>
  </Taxonomy>
  <Rating name="stars" toName="text" maxRating="10"/>
  <Number name="count" toName="text" min="0" max="100"/>
  <Pairwise name="better" toName="text,other"/>
  <TextArea name="summary" toName="text"/>
</View>"""
DATA = {"text": "Anna writes about tech.", "other": "B"}
VALID = {
    "topic": "technology",
    "tags": ["Funny"],
    "ner": [{"text": "Anna", "label": "PER", "start": 0}],
    "area": ["Animals / Birds"],
    "stars": 8,
    "count": 3,
    "better": "left",
    "summary": "About tech.",
}


@pytest.fixture
def spec():
    return parse_labeling_config(CONFIG, "prompt")


def read(spec, *contents, mode="json_schema"):
    messages = [{"content": content, "refusal": None} for content in contents]
    return read_prediction(spec, DATA, "Label it", messages, mode, 0.8)


def by_name(reading):
    return {region["from_name"]: region["value"] for region in reading.filled.regions}


def test_prose_is_read_for_every_kind_but_spans(spec):
    text = "Topic: tech\nTags: funny, long\nAnimals > Birds\nI give it 7/10, about 42 of them; text is better."
    reading = read_prose(spec, text, DATA, 0.8)
    assert reading.values == {
        "topic": ["technology"],
        "tags": ["Funny", "Long"],
        "area": ["Animals / Birds"],
        "stars": 7,
        "count": 7.0,  # the first number in range: prose is read the way an annotator would, not better
        "better": "left",  # named by its object
    }
    assert reading.confidences["topic"] == {"technology": 0.7}  # an abbreviation
    assert reading.confidences["tags"] == {"Funny": 1.0, "Long": 1.0}


def test_a_valid_answer_is_kept_as_it_is(spec):
    reading = read(spec, json.dumps(VALID))
    assert reading.notes == [] and reading.filled.dropped == []
    assert by_name(reading) == {
        "topic": {"choices": ["technology"]},
        "tags": {"choices": ["Funny"]},
        "ner": {"start": 0, "end": 4, "text": "Anna", "labels": ["PER"]},
        "area": {"taxonomy": [["Animals", "Birds"]]},
        "stars": {"rating": 8},
        "count": {"number": 3},
        "better": {"selected": "left"},
        "summary": {"text": ["About tech."]},
        "prompt": {"text": ["Label it"]},
    }
    assert reading.filled.score() == 1.0


def test_fields_failing_the_schema_are_read_again_as_prose(spec):
    broken = {
        "topic": "Tech.",
        "stars": "eight out of ten",
        "summary": ["About", 2],
        "ner": [{"text": "Anna", "label": "PER"}],
        "count": "many",
    }
    reading = read(spec, json.dumps(broken))
    values = by_name(reading)
    assert values["topic"] == {"choices": ["technology"]}
    assert values["stars"] == {"rating": 8}
    assert values["summary"] == {"text": ['["About", 2]']}
    assert values["ner"]["text"] == "Anna"  # span items are checked one by one, not re-read
    assert "count" not in values
    assert reading.notes == [
        "topic: 'Tech.' is not one of ['sports', 'politics', 'technology']; read as prose: ['technology']",
        "stars: 'eight out of ten' is not valid under any of the given schemas; read as prose: 8",
        "count: 'many' is not valid under any of the given schemas; read as prose: None",
        "summary: 2 is not of type 'string'; kept as text",
    ]
    assert reading.filled.score() == 0.85  # technology read at 0.7 (an abbreviation), Anna quoted exactly


def test_an_answer_that_is_not_json_is_read_as_prose_and_held_by_the_text_areas(spec):
    reading = read(spec, "It is about tech, 9/10.", "Second answer")
    assert reading.notes[0].startswith("the model's answer has no JSON object in its content (json_schema output mode)")
    values = by_name(reading)
    assert values["topic"] == {"choices": ["technology"]} and values["stars"] == {"rating": 9}
    assert values["summary"] == {"text": ["It is about tech, 9/10.", "Second answer"]}
    assert "ner" not in values


def test_an_object_naming_no_control_is_prose(spec):
    reading = read(spec, json.dumps({"answer": "politics"}), mode="tools")
    assert reading.notes == ["the answer object names no control of the config (['answer']); read as prose"]
    assert by_name(reading)["topic"] == {"choices": ["politics"]}


def test_text_mode_takes_a_json_object_from_the_prose_and_each_answer_fills_the_text_areas(spec):
    answer = f"Sure:\n```json\n{json.dumps(VALID)}\n```"
    reading = read(spec, answer, json.dumps({"summary": "Second."}), "third, in prose", mode="text")
    assert reading.notes == []
    values = by_name(reading)
    assert values["topic"] == {"choices": ["technology"]}
    assert values["summary"] == {"text": ["About tech.", "Second.", "third, in prose"]}


def test_a_refusal_is_noted_and_nothing_is_invented(spec):
    reading = read_prediction(spec, DATA, None, [{"content": None, "refusal": "I cannot help"}], "json_schema", 0.8)
    assert reading.notes == ["the model refused to answer: I cannot help; read as prose"]
    assert reading.filled.regions == []


def test_nothing_readable_without_a_text_area_fails_the_task():
    spec = parse_labeling_config(
        '<View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/>'
        '<Choices name="c" toName="t"><Choice value="Yes"/><Choice value="No"/></Choices></View>',
        "prompt",
    )
    with pytest.raises(AnswerFormatError, match="nothing in the model's answer fits this labeling config: 'Hmm.'"):
        read_prediction(spec, {"t": "x"}, "p", [{"content": "Hmm."}], "text", 0.8)
    with pytest.raises(AnswerFormatError, match="no answer"):
        read_prediction(spec, {"t": "x"}, "p", [], "text", 0.8)
    # an answer object saying that nothing applies is an answer: an empty prediction, not a failure
    assert (
        read_prediction(spec, {"t": "x"}, None, [{"content": '{"c": null}'}], "json_schema", 0.8).filled.regions == []
    )


# --- answers that decline (issue #28) -------------------------------------------------------------------------

SENTIMENT = """<View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/>
  <Choices name="c" toName="t">{choices}</Choices>{more}</View>"""


def spec_of(choices=("Positive", "Negative"), more=""):
    listed = "".join(f'<Choice value="{choice}"/>' for choice in choices)
    return parse_labeling_config(SENTIMENT.format(choices=listed, more=more), "prompt")


def predicted(spec, content, mode="text", prompt=None, refusal=None):
    return read_prediction(spec, {"t": "x"}, prompt, [{"content": content, "refusal": refusal}], mode, 0.8)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("I cannot determine the sentiment of this text.", "cannot determine"),
        ("None of these categories fit.", "none of these"),
        ("N/A", "n a"),
    ],
)
def test_an_answer_that_declines_is_an_empty_prediction_not_a_failure(answer, reason):
    reading = predicted(spec_of(), answer)
    assert reading.filled.regions == []
    assert reading.abstention == Abstention(reason, {"c": ("Choices", EMPTY)})
    # the prompt's echo stays, as in every prediction: no region of any control the model was asked to fill
    assert [region["from_name"] for region in predicted(spec_of(), answer, prompt="p").filled.regions] == ["prompt"]


def test_an_answer_that_declines_takes_the_configs_none_or_other_choice():
    reading = predicted(spec_of(("Positive", "Negative", "Other")), "None of these categories fit.")
    assert by_name(reading) == {"c": {"choices": ["Other"]}}
    assert reading.abstention == Abstention("none of these", {"c": ("Choices", NONE_CHOICE)})
    assert reading.filled.score() == DECLINED  # how surely it was read: a decline, not a verdict


def test_a_none_choice_named_by_the_model_is_an_answer_not_an_abstention():
    reading = predicted(spec_of(("Positive", "Negative", "None")), "None")
    assert by_name(reading) == {"c": {"choices": ["None"]}}
    assert reading.abstention is None


@pytest.mark.parametrize("answer", ["not positive", "Hmm.", "There is no clear sentiment."])
def test_an_answer_that_does_not_decline_still_fails_when_nothing_fits(answer):
    with pytest.raises(AnswerFormatError, match="nothing in the model's answer fits"):
        predicted(spec_of(), answer)


def test_an_answer_that_answers_one_control_and_declines_another_is_no_abstention():
    spec = spec_of(more='<Rating name="r" toName="t"/>')
    reading = predicted(spec, "Positive. I cannot determine a rating.")
    assert by_name(reading) == {"c": {"choices": ["Positive"]}}
    assert reading.abstention is None


def test_a_structured_answer_declines_with_null_for_every_control_or_with_words():
    spec = spec_of(("Positive", "Negative", "Other"), more='<Rating name="r" toName="t"/>')
    reading = predicted(spec, json.dumps({"c": None, "r": None}), mode="json_schema")
    assert reading.filled.regions == []
    assert reading.abstention == Abstention(STRUCTURED_DECLINE, {"c": ("Choices", EMPTY), "r": ("Rating", EMPTY)})

    reading = predicted(spec, json.dumps({"c": "None of these fit", "r": None}), mode="json_schema")
    assert by_name(reading) == {"c": {"choices": ["Other"]}}
    assert reading.abstention == Abstention("none of these", {"c": ("Choices", NONE_CHOICE), "r": ("Rating", EMPTY)})

    assert predicted(spec, json.dumps({"c": "Positive", "r": None}), mode="json_schema").abstention is None
    reading = predicted(spec, json.dumps({"c": None, "r": 9}), mode="json_schema")  # out of range: not a decline
    assert reading.filled.regions == [] and reading.abstention is None


def test_no_entity_in_the_text_is_an_answer_not_a_decline():
    spec = parse_labeling_config(
        '<View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/>'
        '<Labels name="ner" toName="t"><Label value="PER"/></Labels></View>',
        "prompt",
    )
    reading = predicted(spec, json.dumps({"ner": []}), mode="json_schema")
    assert reading.filled.regions == [] and reading.abstention is None


def test_a_providers_refusal_is_an_abstention_with_its_words():
    reading = predicted(spec_of(), None, mode="json_schema", refusal="I can't help with that.")
    assert reading.filled.regions == []
    assert reading.abstention == Abstention("refused: I can't help with that.", {"c": ("Choices", EMPTY)})


def test_a_choices_alias_and_hint_name_it_in_prose_and_the_alias_is_stored():
    spec = parse_labeling_config(
        '<View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/><Choices name="c" toName="t">'
        '<Choice value="World"/><Choice value="Sci/Tech" alias="sci_tech" hint="Science and Technology news"/>'
        "</Choices></View>",
        "prompt",
    )
    for answer in ("sci_tech", "Science and Technology news", "The article is science and technology news.",
                   "Science and Technology", "Topic: science & tech"):  # fmt: skip
        assert by_name(predicted(spec, answer)) == {"c": {"choices": ["sci_tech"]}}, answer


def test_a_taxonomy_gives_its_none_or_other_node_to_an_answer_that_declines():
    spec = parse_labeling_config(
        '<View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/><Taxonomy name="x" toName="t">'
        '<Choice value="Animals"><Choice value="Birds"/></Choice><Choice value="Other"/></Taxonomy></View>',
        "prompt",
    )
    reading = predicted(spec, "I cannot determine what the text is about.")
    assert by_name(reading) == {"x": {"taxonomy": [["Other"]]}}
    assert reading.abstention == Abstention("cannot determine", {"x": ("Taxonomy", NONE_CHOICE)})
    assert predicted(spec, "Other").abstention is None  # named, not declined


def test_a_structured_answer_with_entities_and_a_null_choice_answered_something():
    spec = spec_of(more='<Labels name="ner" toName="t"><Label value="PER"/></Labels>')
    answer = {"c": None, "ner": [{"text": "x", "label": "PER", "start": 0}]}
    reading = predicted(spec, json.dumps(answer), mode="json_schema")
    assert by_name(reading) == {"ner": {"start": 0, "end": 1, "text": "x", "labels": ["PER"]}}
    assert reading.abstention is None
    reading = predicted(spec, json.dumps({"c": None, "ner": []}), mode="json_schema")
    assert reading.abstention == Abstention(STRUCTURED_DECLINE, {"c": ("Choices", EMPTY)})
