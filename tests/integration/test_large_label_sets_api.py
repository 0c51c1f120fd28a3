"""Thousands of labels through /predict, over HTTP to the fake OpenAI server (which refuses a strict schema over
OpenAI's enum limits, as OpenAI does): each task is asked about its candidates only, within the limits, and an
answer outside them is refused while the rest of the prediction stands."""

from __future__ import annotations

import json
import logging

import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.labeling.strict import MAX_ENUM_VALUES
from tests.fakes.openai_server import Answer
from tests.fakes.openai_server.strict import MAX_TOTAL_STRING
from tests.integration.test_structured_api import context, values
from tests.large_label_sets import large_choices, large_taxonomy, own_word

PROJECT = "31.1700000000"
K = 50  # LABEL_SELECTION_K's default: the settings below are the defaults


def predict(client, config, tasks):
    body = {"tasks": tasks, "project": PROJECT, "label_config": config, "params": {"context": context()}}
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.json
    return response.json["results"]


def enum_of(schema, name):
    node = schema["properties"][name]["anyOf"][0]
    return node.get("items", node)["enum"]


def sent_schema(request, mode):
    if mode == "tools":
        return request.body["tools"][0]["function"]["parameters"]
    return request.body["response_format"]["json_schema"]["schema"]


@pytest.mark.parametrize("mode", ["auto", "tools"])
def test_a_5000_value_taxonomy_asks_each_task_about_its_candidates(
    make_client, make_settings, real_store, fake_llm, mode
):
    config, leaves = large_taxonomy()
    client = make_client(make_settings(output_mode=mode), real_store)
    # each task names one leaf three times by its own word, and 300 others once; the fake answers that leaf's path
    others = ", ".join(own_word(leaf) for leaf in leaves[1000:1300])
    by_text = {
        f"A note on {own_word(leaf)} ({own_word(leaf)}, {own_word(leaf)}), not {others}.": leaf
        for leaf in (leaves[77], leaves[4321])
    }
    tasks = [{"id": i, "data": {"text": text}} for i, text in enumerate(by_text)]

    def reply(messages, index):
        return {"topic": [" / ".join(leaf) for text, leaf in by_text.items() if text in messages[-1]["content"]]}

    fake_llm.reply = reply

    predictions = predict(client, config, tasks)

    interface = LabelInterface(config)
    for task, prediction in zip(tasks, predictions, strict=True):
        assert interface.validate_prediction(prediction, return_errors=True) == []
        assert values(prediction)["topic"] == [{"taxonomy": [by_text[task["data"]["text"]]]}]
    requests = fake_llm.chat_requests
    assert [request.status for request in requests] == [200, 200]  # the fake refuses what OpenAI would refuse
    enums = []
    for request in requests:  # in the order the calls arrived, which need not be the tasks'
        schema = sent_schema(request, mode)
        enum = enum_of(schema, "topic")
        assert len(enum) == K <= MAX_ENUM_VALUES
        assert len(json.dumps(schema)) < MAX_TOTAL_STRING
        messages = json.dumps(request.body["messages"])
        assert len(messages) < 20_000  # the 5,000 paths (about 110,000 characters) are not in the prompt
        [leaf] = [leaf for text, leaf in by_text.items() if text in request.body["messages"][-1]["content"]]
        assert " / ".join(leaf) in enum
        enums.append(enum)
    assert set(enums[0]) != set(enums[1])  # each task its own candidates


def test_a_3000_value_choices_refuses_an_answer_outside_its_candidates(
    make_client, make_settings, real_store, fake_llm, caplog
):
    caplog.set_level(logging.INFO, logger="shared.predictor")
    config, labels = large_choices()
    config = config.replace("</View>", '<Rating name="stars" toName="text"/></View>')
    client = make_client(make_settings(), real_store)
    named, elsewhere = labels[2345], labels[12]
    others = ", ".join(own_word(label) for label in labels[100:400])
    text = f"Everything here is {own_word(named)}, {own_word(named)}, {own_word(named)}; not {others}."
    # the second answer breaks the schema, as a provider that does not enforce it (Ollama, say) may let a model do
    answers = iter(
        [{"category": named, "stars": 4}, Answer(json.dumps({"category": elsewhere, "stars": 2}), verbatim=True)]
    )
    fake_llm.reply = lambda messages, index: next(answers)

    [kept] = predict(client, config, [{"id": 1, "data": {"text": text}}])
    [refused] = predict(client, config, [{"id": 2, "data": {"text": text + " Really."}}])

    interface = LabelInterface(config)
    assert interface.validate_prediction(kept, return_errors=True) == []
    assert values(kept) == {
        "category": [{"choices": [named]}],
        "stars": [{"rating": 4}],
        "prompt": [{"text": ["Label it"]}],
    }
    assert values(refused) == {"stars": [{"rating": 2}], "prompt": [{"text": ["Label it"]}]}
    assert f"task 2: category: {elsewhere!r} is not one of" in caplog.text
    for request in fake_llm.chat_requests:
        schema = request.body["response_format"]["json_schema"]["schema"]
        assert request.status == 200  # the fake refuses a schema OpenAI's strict mode would
        enum = enum_of(schema, "category")
        assert named in enum and elsewhere not in enum and len(enum) == K
        assert request.body["messages"][-1]["content"].endswith(f'Options for "category": {enum}')


def test_with_an_embeddings_model_the_candidates_are_the_nearest_by_embeddings_and_the_labels_embedded_once(
    make_client, make_settings, real_store, fake_llm
):
    """SIMILARITY_EMBEDDINGS_MODEL: the labels and each task's text go through the real openai client to the fake's
    /v1/embeddings (a hashed bag of words: texts sharing words are near); the vectors are kept in Redis, so
    another process's next task embeds only its own text."""
    config, labels = large_choices()
    settings = make_settings(similarity_embeddings_model="text-embedding-3-small")
    first, second = labels[2345], labels[17]
    fake_llm.reply = lambda messages, index: {
        "category": next(label for label in (first, second) if own_word(label) in messages[-1]["content"])
    }

    def text(label):
        return f"Everything here is {own_word(label)}, {own_word(label)}, {own_word(label)}."

    [one] = predict(make_client(settings, real_store), config, [{"id": 1, "data": {"text": text(first)}}])
    embedded = fake_llm.embedding_requests
    inputs = [item for request in embedded for item in request.body["input"]]
    assert all(request.status == 200 and request.body["model"] == "text-embedding-3-small" for request in embedded)
    assert len(inputs) == len(labels) + 1 and text(first) in inputs  # every label once, and the task's text
    assert max(len(request.body["input"]) for request in embedded) <= 2048  # in lists, as the API takes them

    # another app (its own process-wide caches): the labels' vectors come from Redis, only the new text is asked
    [two] = predict(make_client(settings, real_store), config, [{"id": 2, "data": {"text": text(second)}}])
    assert [request.body["input"] for request in fake_llm.embedding_requests[len(embedded) :]] == [[text(second)]]

    for prediction, label in ((one, first), (two, second)):
        assert values(prediction)["category"] == [{"choices": [label]}]
    for request, label in zip(fake_llm.chat_requests, (first, second), strict=True):
        enum = enum_of(request.body["response_format"]["json_schema"]["schema"], "category")
        assert label in enum and len(enum) <= K

    # the embeddings model is part of the model version: setting it predicts again
    [bm25] = predict(make_client(make_settings(), real_store), config, [{"id": 1, "data": {"text": text(first)}}])
    assert bm25["model_version"] != one["model_version"] == two["model_version"]
