"""Structured predictions through the API, over HTTP to the fake OpenAI server.

Each output mode end to end; ``auto`` falling back json_schema → tools → text and remembering it in Redis;
logprobs as the score; dynamic choices; several objects; answers that break the schema read as prose; what
``/setup`` says about unfilled controls; and the reference backend's own test (``tech`` → ``technology``).
"""

from __future__ import annotations

import json
import logging
import math

import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.adapters.store import Store
from shared.domain.digests import endpoint_key
from shared.domain.labeling.schema import answer_schema
from shared.domain.labeling.spec import parse_labeling_config
from tests.conftest import labeling_config, real_redis_url
from tests.fakes.openai_server import Answer

PROJECT = "9.1700000000"
CONFIG = """<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text"/>
  <Choices name="sentiment" toName="text"><Choice value="Positive"/><Choice value="Negative"/></Choices>
  <Labels name="ner" toName="text"><Label value="PER"/><Label value="LOC"/></Labels>
  <Taxonomy name="topic" toName="text">
    <Choice value="Travel"><Choice value="Flights"/><Choice value="Hotels"/></Choice><Choice value="Food"/>
  </Taxonomy>
  <Rating name="stars" toName="text"/>
  <TextArea name="summary" toName="text"/>
</View>"""
TEXT = "Anna flew to Paris. Anna loved it."
ANSWER = {
    "sentiment": "Positive",
    "ner": [
        {"text": "Anna", "label": "PER", "start": None},
        {"text": "Paris", "label": "LOC", "start": 13},
        {"text": "Anna", "label": "PER", "start": None},
    ],
    "topic": ["Travel / Flights"],
    "stars": 5,
    "summary": "Anna enjoyed her flight to Paris.",
}
EXPECTED = {
    "sentiment": [{"choices": ["Positive"]}],
    "ner": [
        {"start": 0, "end": 4, "text": "Anna", "labels": ["PER"]},
        {"start": 13, "end": 18, "text": "Paris", "labels": ["LOC"]},
        {"start": 20, "end": 24, "text": "Anna", "labels": ["PER"]},
    ],
    "topic": [{"taxonomy": [["Travel", "Flights"]]}],
    "stars": [{"rating": 5}],
    "summary": [{"text": ["Anna enjoyed her flight to Paris."]}],
    "prompt": [{"text": ["Label it"]}],
}
PROSE = "Sentiment: Positive\nTopic: Travel > Flights\nRating: 5/5"


def context(prompt="Label it", to_name="text", name="prompt"):
    return {"result": [{"from_name": name, "to_name": to_name, "type": "textarea", "value": {"text": [prompt]}}]}


def predict(client, tasks, config=CONFIG, ctx=None, project=PROJECT):
    body = {"tasks": tasks, "project": project, "label_config": config, "params": {"context": ctx}}
    return client.post("/predict", json=body)


def predict_one(client, data, config=CONFIG, **kwargs):
    response = predict(client, [{"id": 1, "data": data}], config, context(**kwargs))
    assert response.status_code == 200, response.json
    [prediction] = response.json["results"]
    assert LabelInterface(config).validate_prediction(prediction, return_errors=True) == []
    return prediction


def values(prediction):
    found: dict[str, list] = {}
    for region in prediction["result"]:
        found.setdefault(region["from_name"], []).append(region["value"])
    return found


def schema_for(config, data):
    return answer_schema(parse_labeling_config(config, "prompt"), data)


@pytest.mark.parametrize("mode", ["json_schema", "tools", "auto"])
def test_structured_modes_fill_every_control(make_client, make_settings, fake_llm, mode):
    client = make_client(make_settings(output_mode=mode))
    fake_llm.reply = lambda messages, index: ANSWER
    prediction = predict_one(client, {"text": TEXT})

    assert values(prediction) == EXPECTED
    [request] = fake_llm.chat_requests
    body = request.body
    system, user = body["messages"]
    assert system["role"] == "system" and system["content"].startswith(
        "Task Directive: Label it\n\nAnswer with one JSON"
    )
    assert user == {"role": "user", "content": f"Source Text: {TEXT}"}
    schema = schema_for(CONFIG, {"text": TEXT})
    if mode == "tools":
        assert body["tools"][0]["function"]["parameters"] == schema
        assert body["tool_choice"] == {"type": "function", "function": {"name": "annotation"}}
        assert "response_format" not in body and "logprobs" not in body  # tool calls carry no logprobs
        assert prediction["score"] == 1.0  # every label named exactly, every quote found as written
    else:
        assert body["response_format"]["json_schema"] == {"name": "annotation", "schema": schema, "strict": True}
        assert body["logprobs"] is True and "tools" not in body
        assert prediction["score"] == round(math.exp(-0.01), 4)  # the fake's logprob for every token


def test_text_mode_asks_without_a_schema_and_reads_prose(make_client, make_settings, fake_llm):
    client = make_client(make_settings(output_mode="text"))
    fake_llm.reply = lambda messages, index: PROSE
    prediction = predict_one(client, {"text": TEXT})

    assert values(prediction) == {
        "sentiment": [{"choices": ["Positive"]}],
        "topic": [{"taxonomy": [["Travel", "Flights"]]}],
        "stars": [{"rating": 5}],
        "summary": [{"text": [PROSE]}],  # the answer as written, as in the reference
        "prompt": [{"text": ["Label it"]}],
    }
    [request] = fake_llm.chat_requests
    assert request.body["messages"] == [
        {"role": "system", "content": "Task Directive: Label it"},
        {"role": "user", "content": f"Source Text: {TEXT}"},
    ]
    assert request.body["logprobs"] is True
    assert "response_format" not in request.body and "tools" not in request.body


def test_text_mode_reads_a_json_object_written_in_the_prose(make_client, make_settings, fake_llm):
    client = make_client(make_settings(output_mode="text"))
    fake_llm.reply = lambda messages, index: f"Here it is:\n```json\n{json.dumps(ANSWER)}\n```"
    assert values(predict_one(client, {"text": TEXT})) == EXPECTED


def test_auto_falls_back_to_tools_then_text_and_every_process_remembers(
    make_client, make_settings, real_store, redis_prefix, fake_llm
):
    settings = make_settings(redis_key_prefix=redis_prefix)
    client = make_client(settings, real_store)
    fake_llm.refuse = {"response_format", "tools"}
    fake_llm.reply = lambda messages, index: json.dumps(ANSWER)  # told the fields, the model writes the object

    assert values(predict_one(client, {"text": TEXT})) == EXPECTED
    refused_format, refused_tools, answered = fake_llm.chat_requests
    assert (refused_format.status, "response_format" in refused_format.body) == (400, True)
    assert (refused_tools.status, "tools" in refused_tools.body, "response_format" in refused_tools.body) == (
        400,
        True,
        False,
    )
    assert answered.status == 200 and not {"response_format", "tools"} & answered.body.keys()
    assert answered.body["logprobs"] is True
    assert answered.body["messages"] == refused_format.body["messages"]  # the instructions stay
    assert real_store.refused_features(endpoint_key(settings.defaults.llm)) == {"json_schema", "tools"}

    fake_llm.reset()
    fake_llm.reply = lambda messages, index: json.dumps(ANSWER)
    other_process = make_client(settings, Store.from_url(real_redis_url(), redis_prefix))
    assert values(predict_one(other_process, {"text": TEXT + " Again."})) == EXPECTED
    [request] = fake_llm.chat_requests
    assert request.status == 200 and not {"response_format", "tools"} & request.body.keys()


def test_an_explicit_mode_the_provider_refuses_fails_naming_the_setting(make_client, make_settings, fake_llm, store):
    settings = make_settings(output_mode="json_schema")
    client = make_client(settings)
    fake_llm.refuse = {"json_schema"}
    response = predict(client, [{"id": 1, "data": {"text": TEXT}}], ctx=context())
    assert response.status_code == 502
    assert "is not supported with this model" in response.json["error"]
    assert (
        "(output mode json_schema: set OUTPUT_MODE, or output_mode in the project's extra params, to auto"
        in (response.json["error"])
    )
    assert len(fake_llm.chat_requests) == 1
    assert store.refused_features(endpoint_key(settings.defaults.llm)) == set()


def test_refused_logprobs_are_dropped_and_remembered(make_client, make_settings, fake_llm, store):
    settings = make_settings(output_mode="json_schema")
    client = make_client(settings)
    fake_llm.refuse = {"logprobs"}
    fake_llm.reply = lambda messages, index: ANSWER
    assert predict_one(client, {"text": TEXT})["score"] == 1.0  # from the match quality
    refused, answered = fake_llm.chat_requests
    assert (refused.status, refused.body["logprobs"], answered.status, "logprobs" in answered.body) == (
        400,
        True,
        200,
        False,
    )
    assert store.refused_features(endpoint_key(settings.defaults.llm)) == {"logprobs"}
    predict_one(client, {"text": "Bob stayed home."})
    assert [request.status for request in fake_llm.chat_requests] == [400, 200, 200]
    assert "logprobs" not in fake_llm.chat_requests[-1].body


def test_logprobs_of_the_label_tokens_are_the_score(make_client, make_settings, fake_llm):
    client = make_client(make_settings(output_mode="json_schema"))
    config = labeling_config("sarcasm")
    answer = {"response": "Yes.", "sentiment": ["Sarcastic"]}
    fake_llm.reply = lambda messages, index: Answer(answer, logprob=math.log(0.6))
    assert predict_one(client, {"text": "I love Mondays"}, config)["score"] == 0.6


def test_the_cache_key_holds_the_output_mode(make_client, make_settings, fake_llm):
    fake_llm.reply = lambda messages, index: ANSWER
    for mode, calls in (("json_schema", 1), ("json_schema", 1), ("tools", 2), ("tools", 2)):
        predict_one(make_client(make_settings(output_mode=mode)), {"text": TEXT})
        assert len(fake_llm.chat_requests) == calls, mode


def test_dynamic_choices_come_from_the_task(make_client, make_settings, fake_llm):
    config = """<View><Text name="text" value="$text"/><TextArea name="prompt" toName="text"/>
      <Choices name="answer" toName="text" value="$options"/></View>"""
    data = {"text": "Which city is in France?", "options": [{"value": "Paris"}, {"value": "Rome"}]}
    client = make_client(make_settings())
    fake_llm.reply = lambda messages, index: {"answer": "Paris"}
    assert values(predict_one(client, data, config))["answer"] == [{"choices": ["Paris"]}]
    [request] = fake_llm.chat_requests
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert schema == schema_for(config, data)
    assert schema["properties"]["answer"]["anyOf"][0]["enum"] == ["Paris", "Rome"]
    assert request.body["messages"][-1]["content"].endswith("Options for \"answer\": ['Paris', 'Rome']")


def test_several_objects_are_all_sent_named_and_filled(make_client, make_settings, fake_llm):
    config = """<View>
      <Text name="question" value="$question"/><Text name="reply" value="$reply"/>
      <Image name="first" value="$first"/><Image name="second" value="$second"/>
      <TextArea name="prompt" toName="question"/>
      <Choices name="correct" toName="reply"><Choice value="Correct"/><Choice value="Wrong"/></Choices>
      <Choices name="animal" toName="second"><Choice value="Cat"/><Choice value="Dog"/></Choices>
    </View>"""
    data = {
        "question": "What is in the second picture?",
        "reply": "A dog.",
        "first": "https://example.com/cat.png",
        "second": "https://example.com/dog.png",
    }
    client = make_client(make_settings())
    fake_llm.reply = lambda messages, index: {"correct": "Correct", "animal": "Dog"}
    prediction = predict_one(client, data, config, to_name="question")
    assert {region["from_name"]: (region["to_name"], region["value"]) for region in prediction["result"]} == {
        "correct": ("reply", {"choices": ["Correct"]}),
        "animal": ("second", {"choices": ["Dog"]}),
        "prompt": ("question", {"text": ["Label it"]}),
    }
    [request] = fake_llm.chat_requests
    text, first, second = request.body["messages"][-1]["content"]
    assert text["text"] == (
        "Source Text: ### question (Text)\nWhat is in the second picture?\n\n### reply (Text)\nA dog.\n\n"
        "### first (Image)\n(attached image 1)\n\n### second (Image)\n(attached image 2)"
    )
    assert (first["image_url"]["url"], second["image_url"]["url"]) == (data["first"], data["second"])


def test_an_answer_failing_its_schema_is_read_as_prose(make_client, make_settings, fake_llm, caplog):
    caplog.set_level(logging.INFO, logger="shared.predictor")
    client = make_client(make_settings(output_mode="json_schema"))
    broken = {"sentiment": "positive!", "stars": "five", "summary": "Fine.", "topic": None, "ner": []}
    fake_llm.reply = lambda messages, index: Answer(json.dumps(broken), verbatim=True)
    assert values(predict_one(client, {"text": TEXT})) == {
        "sentiment": [{"choices": ["Positive"]}],
        "stars": [{"rating": 5}],
        "summary": [{"text": ["Fine."]}],
        "prompt": [{"text": ["Label it"]}],
    }
    assert "task 1: sentiment: 'positive!' is not one of ['Positive', 'Negative']; read as prose: ['Positive']" in (
        caplog.text
    )


def test_a_model_ignoring_the_schema_is_read_as_prose(make_client, make_settings, fake_llm):
    client = make_client(make_settings(output_mode="json_schema"))
    fake_llm.reply = lambda messages, index: Answer("I'd say Negative, 2 stars.", verbatim=True)
    assert values(predict_one(client, {"text": TEXT})) == {
        "sentiment": [{"choices": ["Negative"]}],
        "stars": [{"rating": 2}],
        "summary": [{"text": ["I'd say Negative, 2 stars."]}],
        "prompt": [{"text": ["Label it"]}],
    }


def test_invalid_regions_are_dropped_and_logged_the_others_kept(make_client, make_settings, fake_llm, caplog):
    caplog.set_level(logging.WARNING, logger="shared.predictor")
    client = make_client(make_settings())
    answer = dict(ANSWER, ner=[{"text": "Berlin", "label": "LOC", "start": None}, *ANSWER["ner"]])
    fake_llm.reply = lambda messages, index: answer
    assert values(predict_one(client, {"text": TEXT})) == EXPECTED
    assert "task 1: dropped ner: 'Berlin' is not in the text of text" in caplog.text


def test_a_task_fails_alone_when_nothing_can_be_read_and_no_textarea_holds_it(make_client, make_settings, fake_llm):
    config = """<View><Text name="text" value="$text"/><TextArea name="prompt" toName="text"/>
      <Labels name="ner" toName="text"><Label value="PER"/></Labels></View>"""
    client = make_client(make_settings(output_mode="json_schema"))
    fake_llm.reply = lambda messages, index: (
        Answer("No idea.", verbatim=True)
        if "broken" in str(messages)
        else {"ner": [{"text": "Anna", "label": "PER", "start": None}]}
    )
    response = predict(client, [{"id": 1, "data": {"text": "broken"}}], config, context())
    assert response.status_code == 422
    assert response.json["error"] == "nothing in the model's answer fits this labeling config: 'No idea.'"

    tasks = [{"id": 1, "data": {"text": "broken"}}, {"id": 2, "data": {"text": "Anna"}}]
    first, second = predict(client, tasks, config, context()).json["results"]
    assert "result" not in first and first["error"].startswith("nothing in the model's answer fits")
    assert values(second)["ner"] == [{"start": 0, "end": 4, "text": "Anna", "labels": ["PER"]}]


def test_cached_structured_predictions_answer_a_batch_at_once(make_client, make_settings, fake_llm):
    settings = make_settings(use_internal_prompt_template=False, default_prompt="Label {text}")
    client = make_client(settings)
    setup(client, CONFIG)
    fake_llm.reply = lambda messages, index: ANSWER
    tasks = [{"id": i, "data": {"text": TEXT + f" {i}"}} for i in (1, 2)]
    # Opened one at a time in another project with the same config and prompt: answered in the request, and cached
    # (in this project Label Studio would hold them already, and not send them again).
    for task in tasks:
        assert "result" in predict(client, [task], project="10.1700000000").json["results"][0]
    response = predict(client, tasks)
    assert "job" not in response.json
    assert [values(result)["ner"] for result in response.json["results"]] == [EXPECTED["ner"]] * 2
    assert len(fake_llm.chat_requests) == 2


REFERENCE_ANSWERS = {
    "evaluation": (
        "context",
        {"text": "The sky is green."},
        {"response": "It is blue.", "evals": ["Correctness: Incorrect"], "rating": 2},
    ),
    "sarcasm": ("text", {"text": "I love Mondays"}, {"response": "Sarcasm.", "sentiment": ["Sarcastic"]}),
    "chat": ("chat", {"dialogue": [{"role": "user", "content": "Tell me a joke."}]}, {"response": "Knock knock."}),
    "receipts": (
        "image",
        {"image": "https://example.com/receipt.png"},
        {"category": "Groceries", "summarization-response": "Milk, 4.20"},
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_ANSWERS))
def test_the_reference_configs_get_structured_predictions(make_client, make_settings, fake_llm, name):
    to_name, data, answer = REFERENCE_ANSWERS[name]
    config = labeling_config(name)
    client = make_client(make_settings())
    fake_llm.reply = lambda messages, index: answer
    prediction = predict_one(client, data, config, to_name=to_name)
    assert {region["from_name"] for region in prediction["result"]} == {*answer, "prompt"}
    assert values(prediction)["prompt"] == [{"text": ["Label it"]}]
    if name == "evaluation":  # its Taxonomy: leafsOnly, pathSeparator ": "
        assert values(prediction)["evals"] == [{"taxonomy": [["Correctness", "Incorrect"]]}]
    assert "response_format" in fake_llm.chat_requests[0].body


# --- /setup and model versions --------------------------------------------------------------------


def setup(client, config, **extra):
    body = {"project": PROJECT, "schema": config, "hostname": "http://ls.example", "access_token": "t"}
    return client.post("/setup", json=body | ({"extra_params": extra} if extra else {}))


def test_setup_lists_the_unfilled_controls_and_logs_them_once(client, caplog):
    caplog.set_level(logging.INFO, logger="shared.projects")
    config = """<View><Image name="img" value="$image"/><TextArea name="prompt" toName="img"/>
      <Choices name="scene" toName="img"><Choice value="Day"/><Choice value="Night"/></Choices>
      <EllipseLabels name="oval" toName="img"><Label value="Car"/></EllipseLabels></View>"""
    first = setup(client, config)
    assert first.status_code == 200
    assert first.json["unfilled"] == [
        {
            "name": "oval",
            "tag": "EllipseLabels",
            "reason": "only boxes, points, polygons and masks drawn as polygons (RectangleLabels, KeyPointLabels, "
            "PolygonLabels, BrushLabels; Rectangle and Polygon labelled by a Labels) are predicted on an image: vision "
            "models name those; ellipses, unlabelled points, pixel masks and vectors they do not",
        }
    ]
    assert setup(client, config).json == first.json
    assert caplog.text.count("leaves these to annotators: oval <EllipseLabels>: only boxes") == 1
    assert setup(client, labeling_config("sarcasm")).json["unfilled"] == []


def test_setup_refuses_a_config_with_nothing_to_fill_naming_why(client):
    config = """<View><Image name="img" value="$image"/><TextArea name="prompt" toName="img"/>
      <Ellipse name="oval" toName="img"/></View>"""
    response = setup(client, config)
    assert response.status_code == 400
    assert "nowhere to put the answer" in response.json["error"] and "oval: only boxes" in response.json["error"]


def test_the_model_version_covers_the_output_mode_and_the_schema(client):
    default = setup(client, CONFIG).json["model_version"]
    assert setup(client, CONFIG, output_mode="tools").json["model_version"] != default
    assert setup(client, CONFIG, output_mode="auto").json["model_version"] == default
    more_labels = CONFIG.replace('<Label value="LOC"/>', '<Label value="LOC"/><Label value="ORG"/>')
    assert setup(client, more_labels).json["model_version"] != default


# --- the reference backend's own test ----------------------------------------------------------------

REFERENCE_PROMPT = (
    "Classify text into different categories. Start each category prediction in a new line.\n"
    "Text: {text}\nCategories: {labels}"
)
REFERENCE_CONFIG = (
    '<View><Text name="text" value="$text" /><TextArea name="prompt" toName="text" required="true" />'
    '<Choices name="topic" toName="text" choice="single"><Choice value="sports" /><Choice value="politics" />'
    '<Choice value="technology" /></Choices></View>'
)
REFERENCE_TASK = {"data": {"text": "Long text to be classified into one of the topics."}}
REFERENCE_MESSAGE = (
    "Classify text into different categories. Start each category prediction in a new line.\n"
    "Text: Long text to be classified into one of the topics.\nCategories: ['sports', 'politics', 'technology']"
)


@pytest.mark.parametrize("mode", ["text", "auto"])
def test_reference_backend_test_predict(make_client, make_settings, fake_llm, mode):
    """HumanSignal/label-studio-ml-backend, llm_interactive/test_api.py::test_predict: the model answers "tech"."""
    settings = make_settings(use_internal_prompt_template=False, default_prompt=REFERENCE_PROMPT, output_mode=mode)
    client = make_client(settings)
    fake_llm.reply = lambda messages, index: Answer("tech", verbatim=True) if mode == "auto" else "tech"
    response = client.post("/predict", json={"tasks": [REFERENCE_TASK], "label_config": REFERENCE_CONFIG})

    assert response.status_code == 200
    [result] = response.json["results"]
    topic, prompt = result["result"]
    assert (topic["from_name"], topic["to_name"], topic["type"], topic["value"]) == (
        "topic",
        "text",
        "choices",
        {"choices": ["technology"]},
    )
    assert (prompt["from_name"], prompt["to_name"], prompt["type"], prompt["value"]) == (
        "prompt",
        "text",
        "textarea",
        {"text": [REFERENCE_PROMPT]},
    )
    [request] = [r for r in fake_llm.chat_requests if r.status == 200]
    messages = request.body["messages"]
    assert (messages[0] if mode == "text" else messages[-1])["content"] == REFERENCE_MESSAGE
    assert (request.body["model"], request.body["n"], request.body["temperature"]) == ("gpt-3.5-turbo", 1, 0.7)
