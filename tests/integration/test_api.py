"""Every route of the ML backend protocol, with the LLM behind real HTTP (the fake server)."""

import base64
import json
import logging

import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.adapters.store import Store
from tests.conftest import TEST_API_KEY, labeling_config
from tests.fakes.label_studio import FakeLabelStudio

# The fake model answers in prose, as the reference's did (OUTPUT_MODE=text); structured modes: test_structured_api.py
pytestmark = pytest.mark.prose_answers

PROJECT = "7.1700000000"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def prompt_context(text, to_name):
    return {"result": [{"from_name": "prompt", "to_name": to_name, "type": "textarea", "value": {"text": [text]}}]}


def post_predict(client, tasks, config, context=None, project=PROJECT):
    body = {"tasks": tasks, "project": project, "label_config": config, "params": {"context": context}}
    return client.post("/predict", json=body)


def post_setup(client, config, project=PROJECT, **extra):
    body = {"project": project, "schema": config, "hostname": "http://ls.example", "access_token": "t0ken"} | extra
    return client.post("/setup", json=body)


def assert_fits_config(config, prediction):
    assert LabelInterface(config).validate_prediction(prediction, return_errors=True) == []


def regions_by_name(prediction):
    return {region["from_name"]: region["value"] for region in prediction["result"]}


# --- health --------------------------------------------------------------------------------------


def test_health_answers_without_redis(make_client, settings):
    client = make_client(store_=Store.from_url("redis://127.0.0.1:1/0", "nowhere"))
    for path in ("/", "/health"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json == {"status": "UP", "model_class": "LLMInteractive"}


# --- the four labeling configs of the reference ----------------------------------------------------

REFERENCE_CASES = {
    "evaluation": ("context", {"text": "The sky is green."}, "It is usually blue.", {"response": {"text": None}}),
    "sarcasm": (
        "text",
        {"text": "I love it when my computer crashes"},
        "Sarcastic",
        {"response": {"text": None}, "sentiment": {"choices": ["Sarcastic"]}},
    ),
    "chat": (
        "chat",
        {
            "dialogue": [
                {"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "The capital of France is Paris."},
                {"role": "user", "content": "Tell me a joke."},
            ]
        },
        "Why did the chicken cross the road?",
        {"response": {"text": None}},
    ),
    "receipts": (
        "image",
        {"image": "data:image/png;base64," + base64.b64encode(PNG).decode()},
        "Groceries\nMilk and bread, 4.20 total",
        {"summarization-response": {"text": None}, "category": {"choices": ["Groceries"]}},
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_CASES))
def test_interactive_prediction_for_each_reference_config(client, fake_llm, name):
    to_name, data, reply, expected = REFERENCE_CASES[name]
    config = labeling_config(name)
    fake_llm.reply = lambda messages, index: reply
    version = post_setup(client, config).json["model_version"]

    response = post_predict(client, [{"id": 1, "data": data}], config, prompt_context("Do the task", to_name))

    assert response.status_code == 200, response.json
    [prediction] = response.json["results"]
    assert prediction["model_version"] == version
    assert isinstance(prediction["score"], float)
    assert_fits_config(config, prediction)
    values = regions_by_name(prediction)
    assert values["prompt"] == {"text": ["Do the task"]}
    for from_name, value in expected.items():
        assert values[from_name] == (value if value.get("text", "") is not None else {"text": [reply]})
    [request] = fake_llm.chat_requests
    assert request.body["messages"][0]["content"].startswith("Task Directive: Do the task")  # the same every task
    content = request.body["messages"][-1]["content"]  # the task's data, last
    if name == "receipts":
        assert content[1] == {"type": "image_url", "image_url": {"url": data["image"]}}
    elif name == "chat":
        assert content.startswith("Source Text: ") and "user: Tell me a joke." in content
    else:
        assert content == f"Source Text: {data['text']}"


def test_several_tasks_answer_in_task_order_with_per_task_errors(client, fake_llm):
    config = labeling_config("sarcasm")
    tasks = [{"id": i, "data": {"text": f"text {i}"}} for i in range(5)]
    tasks[2] = {"id": 2, "data": {"title": "no text field"}}
    response = post_predict(client, tasks, config, prompt_context("Classify {text}", "text"))
    assert response.status_code == 200
    results = response.json["results"]
    assert len(results) == 5
    for index in (0, 1, 3, 4):
        assert regions_by_name(results[index])["response"] == {
            "text": [f"ANSWER to: Source Text: text {index}"]  # the fake echoes the last message: the task's
        }
    assert "result" not in results[2]
    assert results[2]["error"] == 'task data has no field "text" (read by <Text name="text">)'


def test_num_responses_fill_the_textarea(make_client, make_settings, fake_llm):
    client = make_client(make_settings(num_responses=3))
    config = labeling_config("evaluation")
    response = post_predict(client, [{"id": 1, "data": {"text": "x"}}], config, prompt_context("p", "context"))
    assert len(regions_by_name(response.json["results"][0])["response"]["text"]) == 3
    assert fake_llm.chat_requests[0].body["n"] == 3


def test_user_template_mode_uses_task_fields_and_labels(make_client, make_settings, fake_llm):
    client = make_client(make_settings(use_internal_prompt_template=False))
    config = labeling_config("sarcasm")
    task = {"id": 1, "data": {"text": "Great, rain again", "source": "tweet"}}
    post_predict(client, [task], config, prompt_context("Is this {source} ({text}) one of {labels}?", "text"))
    assert fake_llm.chat_requests[0].body["messages"][0]["content"] == (
        "Is this tweet (Great, rain again) one of ['Sarcastic', 'Not Sarcastic']?"
    )


def test_default_prompt_is_used_without_context(make_client, make_settings, fake_llm):
    client = make_client(make_settings(use_internal_prompt_template=False, default_prompt="Label {text} with {labels}"))
    config = labeling_config("sarcasm")
    fake_llm.reply = lambda messages, index: "Not Sarcastic"
    response = post_predict(client, [{"id": 1, "data": {"text": "hello"}}], config)
    assert regions_by_name(response.json["results"][0])["sentiment"] == {"choices": ["Not Sarcastic"]}
    assert fake_llm.chat_requests[0].body["messages"][0]["content"] == "Label hello with ['Sarcastic', 'Not Sarcastic']"


def test_no_prompt_at_all_says_so_per_task(client, fake_llm):
    response = post_predict(client, [{"id": 1, "data": {"text": "x"}}], labeling_config("sarcasm"))
    assert response.status_code == 200
    [entry] = response.json["results"]
    assert entry["error"].startswith("no prompt:") and "result" not in entry
    assert fake_llm.chat_requests == []


def test_interactive_template_error_is_422(make_client, make_settings, fake_llm):
    client = make_client(make_settings(use_internal_prompt_template=False))
    response = post_predict(
        client, [{"id": 1, "data": {"text": "x"}}], labeling_config("sarcasm"), prompt_context("Use {nope}", "text")
    )
    assert response.status_code == 422
    assert response.json == {"error": "the prompt uses {nope} but the task has no such field (available: labels, text)"}
    assert fake_llm.chat_requests == []


def test_interactive_provider_refusal_is_502_with_its_message_and_no_secret(client, fake_llm, caplog):
    caplog.set_level(logging.DEBUG)
    fake_llm.fail_next(401, message=f"Incorrect API key provided: {TEST_API_KEY}")
    response = post_predict(
        client, [{"id": 1, "data": {"text": "x"}}], labeling_config("sarcasm"), prompt_context("p", "text")
    )
    assert response.status_code == 502
    assert response.json == {"error": "openai answered 401: Incorrect API key provided: ***"}
    assert len(fake_llm.chat_requests) == 1
    assert TEST_API_KEY not in caplog.text


def test_interactive_context_without_a_prompt_suggests_nothing(client, fake_llm):
    config = labeling_config("sarcasm")
    client.post("/webhook", json=annotation_event("stored prompt", config=config))
    context = {
        "result": [
            {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Sarcastic"]}}
        ]
    }
    response = post_predict(client, [{"id": 1, "data": {"text": "x"}}], config, context)
    assert response.status_code == 200
    assert response.json["results"][0]["result"] == []
    assert fake_llm.chat_requests == []


def test_repeated_request_is_answered_from_the_cache(client, fake_llm):
    config = labeling_config("evaluation")
    for _ in range(3):
        response = post_predict(client, [{"id": 1, "data": {"text": "x"}}], config, prompt_context("p", "context"))
        assert response.status_code == 200
    assert len(fake_llm.chat_requests) == 1


# --- images ---------------------------------------------------------------------------------------


@pytest.fixture
def label_studio():
    with FakeLabelStudio(token="ls-token-123") as fake:
        fake.files["/data/upload/1/receipt.png"] = (PNG, "image/png")
        yield fake


def test_label_studio_images_are_fetched_with_its_key_and_inlined(make_client, make_settings, fake_llm, label_studio):
    # LABEL_STUDIO_URL allows fetching from its (loopback) address; the key comes from /setup
    client = make_client(make_settings(cache_ttl=0, label_studio_url=label_studio.url))
    config = labeling_config("receipts")
    post_setup(client, config, hostname=label_studio.url, access_token="ls-token-123")
    for value in ("/data/upload/1/receipt.png", f"{label_studio.url}/data/upload/1/receipt.png"):
        fake_llm.reset()
        response = post_predict(client, [{"id": 1, "data": {"image": value}}], config, prompt_context("p", "image"))
        assert response.status_code == 200, response.json
        part = fake_llm.chat_requests[0].body["messages"][-1]["content"][1]
        assert part == {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
        }
    assert label_studio.seen_authorization == ["Token ls-token-123"] * 2


def test_label_studio_url_and_key_settings_win_over_setup(make_client, make_settings, fake_llm, label_studio):
    client = make_client(make_settings(label_studio_url=label_studio.url, label_studio_api_key="ls-token-123"))
    config = labeling_config("receipts")
    post_setup(client, config, hostname="http://elsewhere.invalid", access_token="wrong")
    response = post_predict(
        client, [{"id": 1, "data": {"image": "/data/upload/1/receipt.png"}}], config, prompt_context("p", "image")
    )
    assert response.status_code == 200, response.json


def test_public_image_urls_are_passed_on(client, fake_llm):
    config = labeling_config("receipts")
    url = "https://sandbox2-test-bucket.s3.amazonaws.com/receipts/113494_page1.png"
    post_predict(client, [{"id": 1, "data": {"image": url}}], config, prompt_context("p", "image"))
    assert fake_llm.chat_requests[0].body["messages"][-1]["content"][1]["image_url"] == {"url": url}


def test_oversized_and_unknown_images_fail_alone(make_client, make_settings, fake_llm, label_studio):
    label_studio.files["/data/upload/1/big.png"] = (b"x" * 5000, "image/png")
    client = make_client(make_settings(max_image_bytes=1024, label_studio_url=label_studio.url))
    config = labeling_config("receipts")
    post_setup(client, config, hostname=label_studio.url, access_token="ls-token-123")
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/1/big.png"}},
        {"id": 2, "data": {"image": "ftp://x/y.png"}},
        {"id": 3, "data": {"image": "/data/upload/1/missing.png"}},
        {"id": 4, "data": {"image": "https://example.com/ok.png"}},
    ]
    results = post_predict(client, tasks, config, prompt_context("p", "image")).json["results"]
    assert "over the limit of 1024 bytes" in results[0]["error"]
    assert "unsupported image reference" in results[1]["error"]
    assert "Label Studio answered 404" in results[2]["error"]
    assert "result" in results[3]


def test_private_addresses_are_neither_fetched_nor_passed_on(make_client, make_settings, fake_llm, label_studio):
    client = make_client(make_settings(allowed_private_hosts=[]))  # the default policy
    config = labeling_config("receipts")
    post_setup(client, config, hostname=label_studio.url, access_token="ls-token-123")  # no LABEL_STUDIO_URL
    images = [
        "/data/upload/1/receipt.png",
        "http://169.254.169.254/latest/meta-data.png",
        "http://localhost:6379/x.png",
        "http://10.1.2.3/x.png",
        "http://[::1]/x.png",
    ]
    tasks = [{"id": i, "data": {"image": image}} for i, image in enumerate(images)]
    results = post_predict(client, tasks, config, prompt_context("p", "image")).json["results"]
    assert "a private address taken from /setup; set LABEL_STUDIO_URL" in results[0]["error"]
    for entry in results[1:]:
        assert "on a private address: only public URLs go to the provider" in entry["error"]
    assert label_studio.seen_authorization == [] and fake_llm.chat_requests == []


# --- setup ----------------------------------------------------------------------------------------


def test_setup_returns_a_stable_version_and_remembers_the_project(client, store):
    config = labeling_config("sarcasm")
    first = post_setup(client, config)
    assert first.status_code == 200
    assert first.json["model_version"].startswith("gpt-3.5-turbo-")
    assert post_setup(client, config).json == first.json
    saved = store.load_setup("7")
    assert (saved.label_config, saved.hostname, saved.access_token) == (config, "http://ls.example", "t0ken")
    assert client.get("/versions?project=7").json == {"versions": [first.json["model_version"]]}


def test_setup_extra_params_override_the_model_per_project(make_client, make_settings, fake_llm):
    client = make_client(make_settings(allowed_models=["gpt-4o"]))
    config = labeling_config("evaluation")
    default = post_setup(client, config).json["model_version"]
    response = post_setup(client, config, extra_params=json.dumps({"model": "gpt-4o", "temperature": 0}))
    assert response.status_code == 200
    assert response.json["model_version"].startswith("gpt-4o-") and response.json["model_version"] != default
    post_predict(client, [{"id": 1, "data": {"text": "x"}}], config, prompt_context("p", "context"))
    assert fake_llm.chat_requests[0].body["model"] == "gpt-4o"
    assert fake_llm.chat_requests[0].body["temperature"] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"schema": '<View><Text name="t" value="$t"/></View>'}, "labeling config has no prompt"),
        ({"schema": "<View>"}, "labeling config is not valid XML"),
        ({"schema": None}, "labeling config is missing"),
        ({"extra_params": {"temprature": 1}}, "extra_params.temprature: unknown key"),
        ({"extra_params": "{not json"}, "extra_params is not valid JSON"),
        ({"project": None}, "project must be"),
    ],
)
def test_setup_rejects_what_cannot_work(client, body, message):
    request = {"project": PROJECT, "schema": labeling_config("sarcasm")} | body
    response = client.post("/setup", json=request)
    assert response.status_code == 400
    assert message in response.json["error"]


# --- webhook --------------------------------------------------------------------------------------


def annotation_event(prompt, action="ANNOTATION_CREATED", config=None):
    project = {"id": 7, "title": "p"} | ({"label_config": config} if config else {})
    annotation = {"id": 1, "result": [{"from_name": "prompt", "to_name": "text", "value": {"text": [prompt]}}]}
    return {"action": action, "project": project, "annotation": annotation, "task": {"id": 1}}


def test_webhook_stores_the_prompt_and_bumps_the_version(client, fake_llm):
    config = labeling_config("sarcasm")
    before = post_setup(client, config).json["model_version"]

    stored = client.post("/webhook", json=annotation_event("Is {text} sarcastic?"))
    assert stored.status_code == 200
    assert stored.json["prompt_changed"] is True
    after = stored.json["model_version"]
    assert after != before
    assert post_setup(client, config).json["model_version"] == after
    assert client.get("/versions?project=7").json == {"versions": [before, after]}

    same = client.post("/webhook", json=annotation_event("Is {text} sarcastic?", action="ANNOTATION_UPDATED"))
    assert same.json == {"status": "ok", "prompt_changed": False, "model_version": after}

    response = post_predict(client, [{"id": 5, "data": {"text": "Oh great"}}], config)
    assert response.json["results"][0]["model_version"] == after
    messages = fake_llm.chat_requests[0].body["messages"]
    assert messages[0]["content"].startswith("Task Directive: Is {text} sarcastic?")
    assert messages[-1]["content"] == "Source Text: Oh great"


def test_webhook_reads_the_config_from_the_event_when_setup_never_ran(client):
    event = annotation_event("new prompt", config=labeling_config("sarcasm"))
    assert client.post("/webhook", json=event).json["prompt_changed"] is True


def test_webhook_annotation_without_prompt_changes_nothing(client):
    post_setup(client, labeling_config("sarcasm"))
    event = annotation_event("x")
    event["annotation"]["result"] = [{"from_name": "sentiment", "value": {"choices": ["Sarcastic"]}}]
    assert client.post("/webhook", json=event).json["prompt_changed"] is False


def test_other_webhook_events_are_unknown(client):
    for action in ("TASKS_CREATED", "PROJECT_UPDATED", None):
        response = client.post("/webhook", json={"action": action, "project": {"id": 7}})
        assert (response.status_code, response.json) == (200, {"status": "Unknown event"})


def test_webhook_without_project_or_config(client):
    assert client.post("/webhook", json={"action": "ANNOTATION_CREATED"}).status_code == 400
    response = client.post("/webhook", json=annotation_event("p"))
    assert response.status_code == 400
    assert "labeling config is missing" in response.json["error"]


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"", "request body must be a JSON object"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b'{"tasks": {"id": 1}}', "tasks must be a list of task objects"),
        (b'{"tasks": []}', "tasks is empty"),
        (b'{"tasks": [1]}', "tasks[0] must be an object"),
        (b'{"tasks": [{"id": 1, "data": {}}, {"id": 2}]}', "tasks[1] has no data object"),
        (b'{"tasks": [{"id": 1, "data": {}}], "params": 5}', "params must be an object"),
        (b'{"tasks": [{"id": 1, "data": {}}]}', "labeling config is missing"),
        (b'{"tasks": [{"id": 1, "data": {}}], "label_config": "<View/>"}', "labeling config has no prompt"),
    ],
)
def test_bad_predict_bodies_are_400_with_a_message(client, raw, message):
    response = client.post("/predict", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert message in response.json["error"]


def test_body_over_the_limit_is_413(make_client, make_settings):
    client = make_client(make_settings(max_request_bytes=2048))
    response = client.post("/predict", data=b"{" + b" " * 4096 + b"}", content_type="application/json")
    assert response.status_code == 413
    assert "error" in response.json


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json
    response = client.get("/predict")
    assert response.status_code == 405 and "POST" in response.headers["Allow"] and "error" in response.json


def test_redis_outage_is_503_without_a_traceback(make_client, settings):
    client = make_client(store_=Store.from_url("redis://127.0.0.1:1/0", "nowhere"))
    response = post_setup(client, labeling_config("sarcasm"))
    assert response.status_code == 503
    assert response.json == {"error": "Redis is unavailable: Error 111 connecting to 127.0.0.1:1. Connection refused."}


# --- basic auth -----------------------------------------------------------------------------------


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_guards_every_route(make_client, make_settings):
    client = make_client(make_settings(basic_auth_user="ls", basic_auth_pass="s3cret"))
    routes = [
        ("get", "/"),
        ("get", "/health"),
        ("post", "/setup"),
        ("post", "/predict"),
        ("post", "/webhook"),
        ("get", "/versions"),
        ("get", "/jobs"),
        ("get", "/metrics"),
    ]
    for method, path in routes:
        for headers in ({}, basic("ls", "wrong"), basic("other", "s3cret")):
            response = getattr(client, method)(path, headers=headers, json={})
            assert response.status_code == 401, (path, headers)
            assert response.headers["WWW-Authenticate"] == 'Basic realm="llm-backend"'
            assert "authentication required" in response.json["error"]
    assert client.get("/health", headers=basic("ls", "s3cret")).status_code == 200
    response = post_setup(client, labeling_config("sarcasm"))
    assert response.status_code == 401
    response = client.post(
        "/setup", json={"project": PROJECT, "schema": labeling_config("sarcasm")}, headers=basic("ls", "s3cret")
    )
    assert response.status_code == 200
