import math
from dataclasses import replace

import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.answers.regions import prose_answers, regions_from_answers
from shared.domain.labeling.spec import parse_labeling_config
from tests.conftest import labeling_config

CONFIG = """<View>
  <Text name="text" value="$text"/><Text name="other" value="$other"/>
  <Paragraphs name="chat" value="$chat" textKey="content" nameKey="role"/>
  <Image name="img" value="$image"/>
  <TextArea name="prompt" toName="text"/>
  <Choices name="single" toName="text"><Choice value="Positive"/><Choice value="Negative" alias="neg"/></Choices>
  <Choices name="multi" toName="text" choice="multiple">
    <Choice value="A"/><Choice value="B"/><Choice value="C"/>
  </Choices>
  <Choices name="dynamic" toName="text" value="$options"/>
  <Choices name="scene" toName="img"><Choice value="Day"/><Choice value="Night"/></Choices>
  <Labels name="ner" toName="text"><Label value="PER"/><Label value="LOC"/></Labels>
  <ParagraphLabels name="slots" toName="chat"><Label value="City"/></ParagraphLabels>
  <Taxonomy name="topic" toName="text">
    <Choice value="Sport"><Choice value="Tennis"/></Choice><Choice value="Art"/>
  </Taxonomy>
  <Rating name="stars" toName="text" maxRating="10"/>
  <Number name="count" toName="text" min="0" max="100"/>
  <TextArea name="summary" toName="text"/>
  <Pairwise name="better" toName="text,other"/>
</View>"""
DATA = {
    "text": "Anna flew to Paris. Anna loves Paris 😀 and tennis.",
    "other": "B",
    "chat": [{"role": "user", "content": "Book Rome"}, {"role": "bot", "content": "Rome or Paris?"}],
    "image": "https://example.com/a.png",
    "options": [{"value": "Yes"}, {"value": "No"}],
}
ANSWER = {
    "single": "Negative",
    "multi": ["A", "C"],
    "dynamic": "Yes",
    "scene": "Night",
    "ner": [
        {"text": "Anna", "label": "PER", "start": None},
        {"text": "Paris", "label": "LOC", "start": 31},
        {"text": "Anna", "label": "PER", "start": None},
    ],
    "slots": [{"paragraph": 1, "text": "Rome", "label": "City"}, {"paragraph": 0, "text": "Paris", "label": "City"}],
    "topic": ["Sport / Tennis", "Art"],
    "stars": 7,
    "count": 12.5,
    "summary": "Anna travels.",
    "better": "right",
}


@pytest.fixture
def spec():
    return parse_labeling_config(CONFIG, "prompt")


def by_name(regions):
    found = {}
    for region in regions:
        found.setdefault(region["from_name"], []).append(region)
    return found


def test_every_in_scope_tag_becomes_regions_label_studio_accepts(spec):
    filled = regions_from_answers(spec, [ANSWER], DATA, "Label it")
    assert filled.dropped == []
    regions = by_name(filled.regions)
    assert [r["value"] for r in regions["single"]] == [{"choices": ["neg"]}]  # the alias is what is stored
    assert [r["value"] for r in regions["multi"]] == [{"choices": ["A", "C"]}]
    assert [r["value"] for r in regions["dynamic"]] == [{"choices": ["Yes"]}]
    assert [(r["to_name"], r["value"]) for r in regions["scene"]] == [("img", {"choices": ["Night"]})]
    assert [r["value"] for r in regions["ner"]] == [
        {"start": 0, "end": 4, "labels": ["PER"], "text": "Anna"},
        {"start": 31, "end": 36, "labels": ["LOC"], "text": "Paris"},
        {"start": 20, "end": 24, "labels": ["PER"], "text": "Anna"},
    ]
    assert [r["value"] for r in regions["slots"]] == [
        {"start": "1", "end": "1", "startOffset": 0, "endOffset": 4, "paragraphlabels": ["City"], "text": "Rome"},
        {"start": "1", "end": "1", "startOffset": 8, "endOffset": 13, "paragraphlabels": ["City"], "text": "Paris"},
    ]
    assert [r["value"] for r in regions["topic"]] == [{"taxonomy": [["Sport", "Tennis"], ["Art"]]}]
    assert [r["value"] for r in regions["stars"]] == [{"rating": 7}]
    assert [r["value"] for r in regions["count"]] == [{"number": 12.5}]
    assert [r["value"] for r in regions["summary"]] == [{"text": ["Anna travels."]}]
    assert [r["value"] for r in regions["prompt"]] == [{"text": ["Label it"]}]
    [pairwise] = regions["better"]
    assert (pairwise["to_name"], pairwise["type"], pairwise["value"]) == ("better", "pairwise", {"selected": "right"})

    others = [region for region in filled.regions if region["type"] != "pairwise"]
    assert spec.interface.validate_prediction({"result": others, "score": filled.score()}, return_errors=True) == []
    for span in regions["ner"] + regions["slots"]:
        value = span["value"]
        if "startOffset" in value:
            content = DATA["chat"][int(value["start"])]["content"]
            assert content[value["startOffset"] : value["endOffset"]] == value["text"]
        else:
            assert DATA["text"][value["start"] : value["end"]] == value["text"]
    assert filled.score() == 1.0 and filled.confidences == [1.0] * len(filled.labels)


def test_pairwise_is_written_as_label_studio_does_though_the_sdk_refuses_that(spec):
    [pairwise] = by_name(regions_from_answers(spec, [{"better": "left"}], DATA, None).regions)["better"]
    errors = spec.interface.validate_prediction({"result": [pairwise]}, return_errors=True)
    assert errors and "'to_name' 'better' not found" in errors[0]  # the SDK quirk this module works around
    assert spec.interface.validate_prediction({"result": [{**pairwise, "to_name": "text"}]})


def test_the_sdk_create_regions_would_drop_a_spans_text(spec):
    [region] = spec.interface.create_regions({"ner": [{"label": ["PER"], "start": 0, "end": 4, "text": "Anna"}]})
    assert "text" not in region.value.model_dump()  # hence the text added by regions_from_answers


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"single": "Neutral"}, "single: 'Neutral' is not one of ['Positive', 'Negative'"),
        ({"multi": ["Z"]}, "multi: 'Z' is not one of"),
        ({"dynamic": "Maybe"}, "dynamic: 'Maybe' is not one of ['Yes', 'No']"),
        ({"ner": [{"text": "Berlin", "label": "LOC", "start": None}]}, "ner: 'Berlin' is not in the text of text"),
        ({"ner": [{"text": "Anna", "label": "ORG", "start": None}]}, "ner: 'ORG' is not one of"),
        ({"ner": ["Anna"]}, "ner: expected {text, label, start}"),
        ({"slots": [{"paragraph": 0, "text": "Madrid", "label": "City"}]}, "slots: 'Madrid' is in no utterance"),
        ({"topic": ["Tennis / Sport"]}, "topic: 'Tennis / Sport' is not one of"),
        ({"stars": 11}, "stars: a rating must be a whole number from 1 to 10"),
        ({"stars": "5"}, "stars: a rating must be a whole number"),
        ({"count": 101}, "count: 101 is outside [0, 100]"),
        ({"count": "12"}, "count: expected a number"),
        ({"better": "both"}, 'better: expected "left" or "right"'),
    ],
)
def test_invalid_values_are_dropped_with_the_reason_and_the_rest_kept(spec, answer, reason):
    filled = regions_from_answers(spec, [{**answer, "summary": "kept"}], DATA, "p")
    assert len(filled.dropped) == 1 and filled.dropped[0].startswith(reason), filled.dropped
    assert sorted(region["from_name"] for region in filled.regions) == ["prompt", "summary"]


def test_a_region_the_sdk_refuses_is_dropped_with_its_errors(spec):
    # An interface whose "single" offers other labels than the spec's: the SDK's check has the last word.
    stricter = CONFIG.replace('<Choice value="Positive"/>', '<Choice value="Positive only"/>')
    checked_elsewhere = replace(spec, interface=LabelInterface(stricter))
    filled = regions_from_answers(checked_elsewhere, [{"single": "Positive", "summary": "kept"}], DATA, None)
    assert [region["from_name"] for region in filled.regions] == ["summary"]
    [reason] = filled.dropped
    assert reason.startswith("single: Region 0: Invalid value for control 'single'")
    assert filled.labels == [] and filled.confidences == []


def test_loose_matches_lower_the_confidence(spec):
    answer = {"single": "  negative ", "ner": [{"text": "ANNA flew", "label": "PER", "start": None}]}
    filled = regions_from_answers(spec, [answer], DATA, None)
    assert filled.dropped == []
    [span] = by_name(filled.regions)["ner"]
    assert span["value"]["text"] == "Anna flew"
    assert filled.confidences == [1.0, 0.9] and filled.score() == 0.95


def test_each_control_that_chose_labels_scores_its_own_regions_when_there_are_several(spec):
    answer = {"single": "neg", "ner": [{"text": "ANNA flew", "label": "PER", "start": None}], "stars": 7}
    filled = regions_from_answers(spec, [answer], DATA, None)

    scored = by_name(filled.scored_regions())
    assert scored["single"][0]["score"] == 1.0 and scored["ner"][0]["score"] == 0.9  # the loose quote
    assert "score" not in scored["stars"][0]  # a rating chooses no label: the prediction's score covers it
    assert all("score" not in region for region in filled.regions)  # the regions themselves are untouched
    # with logprobs, each control's labels' own tokens: "neg" is 50 % sure, "PER" 100 %
    tokens = [{"token": '{"single": "', "logprob": 0.0}, {"token": "neg", "logprob": math.log(0.5)}]
    tokens += [{"token": '", "ner": [{"label": "', "logprob": 0.0}, {"token": "PER", "logprob": 0.0}]
    tokens += [{"token": '"}]}', "logprob": -3.0}]
    scored = by_name(filled.scored_regions(tokens))
    assert (scored["single"][0]["score"], scored["ner"][0]["score"]) == (0.5, 1.0)
    assert filled.score(tokens) == 0.75
    one_control = regions_from_answers(spec, [{"single": "Positive", "stars": 7}], DATA, None)
    assert one_control.scored_regions() == one_control.regions


def test_a_wrong_label_among_right_ones_drops_only_itself(spec):
    filled = regions_from_answers(spec, [{"multi": ["A", "Z", "C"]}], DATA, None)
    assert by_name(filled.regions)["multi"][0]["value"] == {"choices": ["A", "C"]}
    assert filled.dropped == ["multi: 'Z' is not one of ['A', 'B', 'C']"]


def test_single_choice_keeps_the_first_label_and_multiple_dedupes(spec):
    filled = regions_from_answers(spec, [{"single": ["Positive", "Negative"], "multi": ["A", "a", "A"]}], DATA, None)
    regions = by_name(filled.regions)
    assert regions["single"][0]["value"] == {"choices": ["Positive"]}
    assert regions["multi"][0]["value"] == {"choices": ["A"]}


def test_text_areas_hold_every_answer_and_labels_come_from_the_first(spec):
    answers = [{"summary": "first", "single": "Positive"}, {"summary": ["second", " "], "single": "Negative"}, {}]
    regions = by_name(regions_from_answers(spec, answers, DATA, None).regions)
    assert regions["summary"][0]["value"] == {"text": ["first", "second"]}
    assert regions["single"][0]["value"] == {"choices": ["Positive"]}


def test_empty_answers_give_the_prompt_only_and_score_by_what_was_asked(spec):
    filled = regions_from_answers(spec, [{"single": None, "multi": [], "ner": None}], DATA, "p")
    assert [region["from_name"] for region in filled.regions] == ["prompt"]
    assert filled.score() == 0.0
    chat = parse_labeling_config(labeling_config("chat"), "prompt")
    assert regions_from_answers(chat, [{"response": "hi"}], {"dialogue": []}, "p").score() == 1.0


def test_a_task_without_its_dynamic_options_drops_that_field(spec):
    filled = regions_from_answers(spec, [{"dynamic": "Yes"}], {**DATA, "options": None}, None)
    assert filled.regions == [] and filled.dropped == ["dynamic: the task has no options in 'options'"]


def test_the_sdk_taxonomy_form_is_accepted_too(spec):
    filled = regions_from_answers(spec, [{"topic": [["Sport", "Tennis"]]}], DATA, None)
    assert by_name(filled.regions)["topic"][0]["value"] == {"taxonomy": [["Sport", "Tennis"]]}


def test_text_mode_answers_fill_the_text_areas_with_every_answer():
    spec = parse_labeling_config(labeling_config("sarcasm"), "prompt")
    answers = prose_answers(spec, ["Sarcastic, clearly", "second answer"], {"sentiment": ["Sarcastic"]})
    assert answers == [
        {"sentiment": ["Sarcastic"], "response": "Sarcastic, clearly"},
        {"response": "second answer"},
    ]
    regions = by_name(regions_from_answers(spec, answers, {"text": "x"}, "Is it sarcastic?").regions)
    assert regions["response"][0]["value"] == {"text": ["Sarcastic, clearly", "second answer"]}
    assert regions["sentiment"][0]["value"] == {"choices": ["Sarcastic"]}
    assert regions["prompt"][0]["value"] == {"text": ["Is it sarcastic?"]}
    assert prose_answers(spec, [], {"sentiment": ["Sarcastic"]}) == [{"sentiment": ["Sarcastic"]}]
