"""Structured predictions end to end: Retrieve Predictions in a real Label Studio 1.23.2 for a NER project
(``Labels`` on ``Text``), an HTML NER project (``HyperTextLabels``) and a ``Taxonomy`` project, the fake model
answering the schema it is sent (``OUTPUT_MODE=auto`` through the project's extra params); Label Studio's API
shows the predictions as stored."""

from __future__ import annotations

import uuid

import pytest
from label_studio_sdk.label_interface import LabelInterface

from tests.e2e.test_label_studio import calls_for, connect, retrieve_predictions, task_ids, wait_for_predictions
from tests.integration.test_long_texts_api import ENTITY, long_text, quotes_of
from tests.large_label_sets import large_taxonomy, own_word

pytestmark = pytest.mark.timeout(900)  # the first test also installs and migrates Label Studio when not cached

NER = """<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text"/>
  <Labels name="ner" toName="text"><Label value="PER"/><Label value="LOC"/></Labels>
</View>"""
TAXONOMY = """<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text"/>
  <Taxonomy name="topic" toName="text">
    <Choice value="Travel"><Choice value="Flights"/><Choice value="Hotels"/></Choice>
    <Choice value="Food"/>
  </Taxonomy>
</View>"""


HTML_NER = """<View>
  <HyperText name="page" value="$text"/>
  <TextArea name="prompt" toName="page"/>
  <HyperTextLabels name="ner" toName="page">
    <Label value="PER"/><Label value="ORG"/><Label value="LOC"/>
  </HyperTextLabels>
</View>"""
# Whitespace between blocks, an entity across a <b>, a no-break space, a <br> and a character reference: each
# moves the editor's offsets if counted wrongly.
HTML_PAGE = (
    "<div>\n  <h1>John works at <b>Acme</b> Inc.</h1>\n  <p>He lives in New&nbsp;York.<br>"
    "Mary &amp; John met in Paris. [{marker} {index}]</p>\n</div>"
)
HTML_ANSWER = {
    "ner": [
        {"text": "John", "label": "PER"},
        {"text": "Acme Inc.", "label": "ORG"},
        {"text": "New York", "label": "LOC"},  # a no-break space in the page: found ignoring spacing
        {"text": "Mary", "label": "PER"},
        {"text": "John", "label": "PER"},  # the second John
        {"text": "Paris", "label": "LOC"},
    ]
}
H1, P = "/div[1]/h1[1]", "/div[1]/p[1]"
# What Label Studio's editor computes for these words (RichText/domManager.ts): XPath of the text node, offset in
# it, global offsets over every text node of the body (the "\n  " between blocks too) plus one per <br>.
HTML_REGIONS = [
    (f"{H1}/text()[1]", 0, f"{H1}/text()[1]", 4, 3, 7, "John", "PER"),
    (f"{H1}/b[1]/text()[1]", 0, f"{H1}/text()[2]", 5, 17, 26, "Acme Inc.", "ORG"),
    (f"{P}/text()[1]", 12, f"{P}/text()[1]", 20, 41, 49, "New\xa0York", "LOC"),
    (f"{P}/text()[2]", 0, f"{P}/text()[2]", 4, 51, 55, "Mary", "PER"),
    (f"{P}/text()[2]", 7, f"{P}/text()[2]", 11, 58, 62, "John", "PER"),
    (f"{P}/text()[2]", 19, f"{P}/text()[2]", 24, 70, 75, "Paris", "LOC"),
]


def html_region_values() -> list[dict]:
    return [
        {
            "start": start,
            "startOffset": start_offset,
            "end": end,
            "endOffset": end_offset,
            "globalOffsets": {"start": first, "end": last},
            "text": text,
            "hypertextlabels": [label],
        }
        for start, start_offset, end, end_offset, first, last, text, label in HTML_REGIONS
    ]


def structured_project(ls, backend, config: str, texts: list[str], prompt: str):
    project = ls.projects.create(title=f"structured {uuid.uuid4().hex[:8]}", label_config=config)
    ls.projects.import_tasks(id=project.id, request=[{"text": text} for text in texts])
    extra = {"default_prompt": prompt, "use_internal_prompt_template": False, "output_mode": "auto"}
    version = connect(ls, project, backend, extra_params=extra).model_version
    return project, version


def test_ner_spans_are_stored_as_predicted(ls, backend, fake_llm):
    marker = uuid.uuid4().hex[:10]
    texts = [f"😀 Anna flew from Rome to Paris, then Anna slept. [{marker} {i}]" for i in range(5)]
    fake_llm.reply = lambda messages, index: {
        "ner": [
            {"text": "Anna", "label": "PER", "start": None},
            {"text": "Rome", "label": "LOC", "start": None},
            {"text": "paris", "label": "LOC", "start": None},  # found ignoring case, stored as written
            {"text": "Anna", "label": "PER", "start": None},  # the second Anna
            {"text": "Berlin", "label": "LOC", "start": None},  # not in the text: dropped, the rest kept
        ]
    }
    project, version = structured_project(ls, backend, NER, texts, "Find people and places: {text}")

    retrieve_predictions(ls, project)

    found = wait_for_predictions(ls, project, len(texts), backend)
    assert sorted(p["task"] for p in found) == task_ids(ls, project)
    text_of = {task.id: task.data["text"] for task in ls.tasks.list(project=project.id)}
    interface = LabelInterface(NER)
    for prediction in found:
        assert prediction["model_version"] == version
        assert interface.validate_prediction(prediction, return_errors=True) == []
        spans = [region["value"] for region in prediction["result"] if region["from_name"] == "ner"]
        assert spans == [
            {"start": 2, "end": 6, "text": "Anna", "labels": ["PER"]},
            {"start": 17, "end": 21, "text": "Rome", "labels": ["LOC"]},
            {"start": 25, "end": 30, "text": "Paris", "labels": ["LOC"]},
            {"start": 37, "end": 41, "text": "Anna", "labels": ["PER"]},
        ]
        task_text = text_of[prediction["task"]]
        assert all(task_text[span["start"] : span["end"]] == span["text"] for span in spans), "code point offsets"
        assert 0 < prediction["score"] <= 1
    calls = calls_for(fake_llm, marker)
    assert len(calls) == len(texts)
    assert all(call.body["response_format"]["json_schema"]["strict"] is True for call in calls)


def checked_predictions(ls, backend, fake_llm, config: str, texts: list[str], prompt: str, answer) -> list:
    """Retrieve Predictions for a new project of these texts, the fake model answering ``answer`` (or what
    ``answer(messages)`` gives): the predictions, one per task, each of the project's model version and accepted
    by the SDK."""
    fake_llm.reply = lambda messages, index: answer(messages) if callable(answer) else answer
    project, version = structured_project(ls, backend, config, texts, prompt)
    retrieve_predictions(ls, project)
    found = wait_for_predictions(ls, project, len(texts), backend)
    interface = LabelInterface(config)
    for prediction in found:
        assert prediction["model_version"] == version
        # the SDK checks each region against all the others: a 300 KB text's 15,000 take it minutes, so at most
        # the first and last 200 (every region of the other tests)
        result = prediction["result"]
        sample = result if len(result) <= 400 else result[:200] + result[-200:]
        assert interface.validate_prediction({**prediction, "result": sample}, return_errors=True) == []
    return found


def test_hypertext_spans_are_stored_as_the_editor_writes_them(ls, backend, fake_llm):
    marker = uuid.uuid4().hex[:10]
    pages = [HTML_PAGE.format(marker=marker, index=index) for index in range(3)]
    prompt = "Find people, organizations, places: {text}"

    found = checked_predictions(ls, backend, fake_llm, HTML_NER, pages, prompt, HTML_ANSWER)

    for prediction in found:
        ner = [region for region in prediction["result"] if region["from_name"] == "ner"]
        assert [region["value"] for region in ner] == html_region_values()
        assert {region["type"] for region in ner} == {"hypertextlabels"}
    assert len(calls_for(fake_llm, marker)) == len(pages)


def test_a_300_kb_ner_text_is_predicted_in_parts_and_stored_whole(ls, backend, fake_llm):
    """Retrieve Predictions on a 300 KB text (default LONG_TEXT_CHARS): a batch job's worker asks it in parts, and
    Label Studio stores one prediction with every entity at its offset in the whole text, once."""
    marker = uuid.uuid4().hex[:10]
    text = f"[{marker}] " + long_text(300_000)
    prompt = "Find people and places: {text}"

    [prediction] = checked_predictions(
        ls, backend, fake_llm, NER, [text], prompt, lambda messages: {"ner": quotes_of(messages)["ner"]}
    )

    spans = sorted(
        (region["value"] for region in prediction["result"] if region["from_name"] == "ner"),
        key=lambda span: span["start"],
    )
    assert [(span["start"], span["end"], span["text"]) for span in spans] == [
        (found.start(), found.end(), found.group()) for found in ENTITY.finditer(text)
    ]
    assert len(calls_for(fake_llm, marker)) == 1, "the marker opens the text: only the first part holds it"
    assert len(fake_llm.completions) > len(text) // 20_000


def test_taxonomy_paths_are_stored_as_predicted(ls, backend, fake_llm):
    marker = uuid.uuid4().hex[:10]
    texts = [f"A cheap flight and a great pizza. [{marker} {i}]" for i in range(4)]
    answer = {"topic": ["Travel / Flights", "Food"]}

    found = checked_predictions(ls, backend, fake_llm, TAXONOMY, texts, "Which topics? {text}", answer)

    for prediction in found:
        values = {region["from_name"]: region["value"] for region in prediction["result"]}
        assert values == {
            "topic": {"taxonomy": [["Travel", "Flights"], ["Food"]]},
            "prompt": {"text": ["Which topics? {text}"]},
        }
    assert len(calls_for(fake_llm, marker)) == len(texts)


def test_a_5000_value_taxonomy_is_predicted_from_each_tasks_candidates(ls, backend, fake_llm):
    """Label selection end to end: Label Studio holds a 5,000-value Taxonomy; each task is asked about the 50 values
    most like its text (the defaults), within OpenAI's strict-schema limits, and its prediction is stored."""
    marker = uuid.uuid4().hex[:10]
    config, leaves = large_taxonomy()
    named = [leaves[index] for index in (5, 1234, 2500, 4949)]
    others = ", ".join(own_word(leaf) for leaf in leaves[3000:3200])

    def text_naming(leaf):
        word = own_word(leaf)
        return f"On {word} ({word}, {word}); not on {others}. [{marker}]"

    texts = [text_naming(leaf) for leaf in named]

    def reply(messages, index):
        return {"topic": [" / ".join(leaf) for leaf in named if text_naming(leaf) in str(messages)]}

    fake_llm.reply = reply
    project, version = structured_project(ls, backend, config, texts, "Which topics? {text}")

    retrieve_predictions(ls, project)

    found = wait_for_predictions(ls, project, len(texts), backend)
    interface = LabelInterface(config)
    leaf_of = {task.id: named[texts.index(task.data["text"])] for task in ls.tasks.list(project=project.id)}
    assert len(found) == len(texts)
    for prediction in found:
        assert prediction["model_version"] == version
        assert interface.validate_prediction(prediction, return_errors=True) == []
        topic = [region["value"] for region in prediction["result"] if region["from_name"] == "topic"]
        assert topic == [{"taxonomy": [leaf_of[prediction["task"]]]}]
    calls = calls_for(fake_llm, marker)
    assert len(calls) == len(texts) and all(call.status == 200 for call in calls)
    for call in calls:
        schema = call.body["response_format"]["json_schema"]["schema"]
        enum = schema["properties"]["topic"]["anyOf"][0]["items"]["enum"]
        assert len(enum) == 50
        [leaf] = [leaf for leaf in named if text_naming(leaf) in str(call.body["messages"])]
        assert " / ".join(leaf) in enum
