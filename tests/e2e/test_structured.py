"""Structured predictions end to end: Retrieve Predictions in a real Label Studio 1.23.2 for a NER project
(``Labels`` on ``Text``) and a ``Taxonomy`` project, the fake model answering the schema it is sent
(``OUTPUT_MODE=auto`` through the project's extra params); Label Studio's API shows the predictions as stored."""

from __future__ import annotations

import uuid

import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.strict import strict_violations
from tests.e2e.test_label_studio import calls_for, connect, retrieve_predictions, task_ids, wait_for_predictions
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


def test_taxonomy_paths_are_stored_as_predicted(ls, backend, fake_llm):
    marker = uuid.uuid4().hex[:10]
    texts = [f"A cheap flight and a great pizza. [{marker} {i}]" for i in range(4)]
    fake_llm.reply = lambda messages, index: {"topic": ["Travel / Flights", "Food"]}
    project, version = structured_project(ls, backend, TAXONOMY, texts, "Which topics? {text}")

    retrieve_predictions(ls, project)

    found = wait_for_predictions(ls, project, len(texts), backend)
    interface = LabelInterface(TAXONOMY)
    for prediction in found:
        assert prediction["model_version"] == version
        assert interface.validate_prediction(prediction, return_errors=True) == []
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
        assert strict_violations(schema) == []
        enum = schema["properties"]["topic"]["anyOf"][0]["items"]["enum"]
        assert len(enum) == 50
        [leaf] = [leaf for leaf in named if text_naming(leaf) in str(call.body["messages"])]
        assert " / ".join(leaf) in enum
