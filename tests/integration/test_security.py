"""Issue #11, in the API and the chunk runner: keys go only where they belong, one bad task fails alone, hostile
input gets a 4xx. Everything the backend calls is a loopback listener that records what reaches it.

The findings that need real server processes (gunicorn's threads and limits, the worker's log, Flower) are in
test_security_processes.py.
"""

from __future__ import annotations

import base64
import json

import pytest

from shared.adapters.store import ProjectSetup
from shared.domain.types import JobSnapshot
from shared.services import Services
from tests.conftest import LS_TOKEN, TEST_API_KEY, labeling_config
from tests.fakes.recorder import Recorded, RecordingServer, chat_completion, send
from tests.integration.chunk_runs import run_chunk
from worker.chunks import ChunkRunner

PROJECT = "41.1700000000"
SARCASM = labeling_config("sarcasm")
RECEIPTS = labeling_config("receipts")
PROJECT_KEY = "sk-project-own-key-4242"
OPERATOR_LS_KEY = "ls-operator-key-0123456789"
SETUP_TOKEN = "setup-token-abcdef987654"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
LONE_SURROGATE = "bad \ud800 text"


def prompt_context(text, to_name="text"):
    return {"result": [{"from_name": "prompt", "to_name": to_name, "type": "textarea", "value": {"text": [text]}}]}


def interactive(client, data, config=SARCASM, prompt="Sarcastic?", to_name="text"):
    body = {
        "tasks": [{"id": 1, "data": data}],
        "project": PROJECT,
        "label_config": config,
        "params": {"context": prompt_context(prompt, to_name)},
    }
    return client.post("/predict", json=body)


def setup(client, extra_params=None, config=SARCASM, **fields):
    body = {"project": PROJECT, "schema": config, "extra_params": extra_params} | fields
    return client.post("/setup", json=body)


def post_raw(client, path, body):
    """JSON as ``json.dumps`` writes it: a lone surrogate becomes the escape ``\\ud800``, as Label Studio sends it."""
    return client.post(path, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def provider():
    """An OpenAI-compatible endpoint that a request might name: records the key that reaches it."""
    with RecordingServer(lambda request, handler: send(handler, 200, chat_completion("Sarcastic"))) as server:
        yield server


# --- the LLM's endpoint, model and key are the operator's -------------------------------------------------------

UNRESOLVABLE = "https://llm.collector.invalid/v1"  # names that do not resolve are refused too


@pytest.mark.parametrize("own_key", [{}, {"api_key": PROJECT_KEY}], ids=["no key", "its own key"])
def test_re_registering_a_project_cannot_send_its_data_to_another_endpoint(make_client, fake_llm, provider, own_key):
    client = make_client()  # the tests allow loopback hosts (ALLOWED_PRIVATE_HOSTS=127.0.0.1)
    assert setup(client).status_code == 200
    for endpoint in (f"{provider.url}/v1", UNRESOLVABLE):
        response = setup(client, {"base_url": endpoint} | own_key)
        assert response.status_code == 400
        error = response.json["error"]
        assert error.startswith(f"extra_params.base_url: the endpoint {endpoint} is not used")
        assert "ALLOWED_LLM_ENDPOINTS" in error
    assert interactive(client, {"text": "hi"}).status_code == 200  # the project keeps the operator's endpoint
    assert [r.headers["authorization"] for r in fake_llm.chat_requests] == [f"Bearer {TEST_API_KEY}"]
    assert provider.requests == []


@pytest.mark.parametrize("own_key", [{}, {"api_key": PROJECT_KEY}], ids=["no key", "its own key"])
def test_a_setup_stored_before_the_rule_still_cannot_send_the_key_elsewhere(
    make_client, store, fake_llm, provider, own_key
):
    store.save_setup("41", ProjectSetup(SARCASM, extra_params={"base_url": f"{provider.url}/v1"} | own_key))
    response = interactive(make_client(), {"text": "hi"})
    assert response.status_code == 400 and "ALLOWED_LLM_ENDPOINTS" in response.json["error"]
    assert provider.requests == [] and fake_llm.chat_requests == []


@pytest.mark.parametrize(
    ("environment", "extra"),
    [
        ({"openai_provider": "azure"}, {"azure_endpoint": "{url}"}),
        ({}, {"provider": "ollama", "ollama_endpoint": "{url}/v1"}),
    ],
)
def test_every_provider_keeps_the_operator_key_at_home(make_client, make_settings, provider, environment, extra):
    client = make_client(make_settings(azure_resource_endpoint="https://mine.openai.azure.com", **environment))
    named = {key: value.format(url=provider.url) for key, value in extra.items()}
    assert setup(client, named).status_code == 400
    assert provider.requests == []


def test_a_provider_the_operator_did_not_configure_gets_nothing(make_client, fake_llm, default_ollama_port):
    """OPENAI_PROVIDER=openai, no OLLAMA_ENDPOINT: a project switching to Ollama would reach localhost:11434."""
    client = make_client()
    response = setup(client, {"provider": "ollama"})
    assert response.status_code == 400
    assert response.json["error"].startswith("extra_params.provider='ollama' is not used")
    assert "OLLAMA_ENDPOINT" in response.json["error"]
    assert interactive(client, {"text": "hi"}).status_code == 200
    assert len(fake_llm.chat_requests) == 1
    assert default_ollama_port.requests == []


def test_an_endpoint_on_the_allowlist_gets_the_projects_own_key_and_never_the_operators(
    make_client, make_settings, provider
):
    client = make_client(make_settings(allowed_llm_endpoints=[provider.url]))
    assert setup(client, {"base_url": f"{provider.url}/v1", "api_key": PROJECT_KEY}).status_code == 200
    assert interactive(client, {"text": "hi"}).status_code == 200
    [request] = provider.requests
    assert request.headers["authorization"] == f"Bearer {PROJECT_KEY}"
    assert TEST_API_KEY not in provider.seen()


def test_an_endpoint_on_the_allowlist_gets_the_operator_key(make_client, make_settings, provider):
    client = make_client(make_settings(allowed_llm_endpoints=[f"{provider.url}/v1/"]))
    assert setup(client, {"base_url": f"{provider.url}/v1"}).status_code == 200
    assert interactive(client, {"text": "hi"}).status_code == 200
    assert [r.headers["authorization"] for r in provider.requests] == [f"Bearer {TEST_API_KEY}"]


def test_a_project_endpoint_on_a_private_address_is_refused_even_with_its_own_key(make_client, make_settings, provider):
    client = make_client(make_settings(allowed_private_hosts=[]))  # the default: no private hosts
    response = setup(client, {"base_url": f"{provider.url}/v1", "api_key": PROJECT_KEY})
    assert response.status_code == 400
    assert "is not used" in response.json["error"] and "ALLOWED_LLM_ENDPOINTS" in response.json["error"]
    assert provider.requests == []


@pytest.mark.parametrize(
    ("extra", "setting"),
    [
        ({"model": "gpt-4o", "num_responses": 20}, "ALLOWED_MODELS"),
        ({"num_responses": 20}, "MAX_NUM_RESPONSES"),
        ({"OPENAI_MODEL": "gpt-4o", "api_key": PROJECT_KEY}, "ALLOWED_MODELS"),
    ],
)
def test_a_model_or_answers_the_operator_did_not_allow_are_refused(make_client, store, fake_llm, extra, setting):
    client = make_client()
    response = setup(client, extra)
    assert response.status_code == 400 and setting in response.json["error"]
    store.save_setup("41", ProjectSetup(SARCASM, extra_params=extra))  # stored before the rule
    response = interactive(client, {"text": "hi"})
    assert response.status_code == 400 and setting in response.json["error"]
    assert fake_llm.chat_requests == []


def test_a_job_queued_before_the_rule_fails_its_tasks_naming_the_setting(make_settings, store, fake_llm, provider):
    """A batch job whose snapshot (taken at /predict, before the rule) names another endpoint and the project's key:
    the worker fails its tasks at once, saying why, rather than retry a chunk that no retry can fix."""
    settings = make_settings(cache_ttl=0)
    extra = {"base_url": f"{provider.url}/v1", "api_key": PROJECT_KEY}
    snapshot = JobSnapshot(
        project="41",
        label_config=SARCASM,
        extra_params=extra,
        model_version="v0",
        model="m",
        prompt="p",
        prompt_error=None,
    )
    services = Services.build(settings, store)
    job_id = services.jobs.create(snapshot, [1, 2], 10)
    assert services.batch_jobs.begin(job_id) is False  # not through the Batch API: the chunks say why
    run_chunk(ChunkRunner(settings, services.projects, services.predictor, services.jobs), job_id, 0, 0, "test")
    status = services.jobs.status(job_id)
    assert status.failed == 2 and status.state == "failed", status
    assert all("ALLOWED_LLM_ENDPOINTS" in error["error"] for error in status.errors)
    assert provider.requests == [] and fake_llm.chat_requests == []


def test_the_operator_may_allow_models_and_more_answers(make_client, make_settings, fake_llm):
    client = make_client(make_settings(allowed_models=["gpt-4o"], max_num_responses=3))
    assert setup(client, {"model": "gpt-4o", "num_responses": 3}).status_code == 200
    assert interactive(client, {"text": "hi"}).status_code == 200
    [request] = fake_llm.chat_requests
    assert (request.body["model"], request.body["n"]) == ("gpt-4o", 3)


# --- Label Studio: its key only to LABEL_STUDIO_URL, /setup's host only with /setup's token ----------------------


def label_studio_serving_a_png(request: Recorded, handler) -> None:
    if request.headers.get("authorization") != f"Token {SETUP_TOKEN}":
        send(handler, 401, {"detail": f"invalid token {request.headers.get('authorization')}"})
        return
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(len(PNG)))
    handler.end_headers()
    handler.wfile.write(PNG)


def test_images_are_fetched_from_the_setup_host_with_the_setup_token_not_the_operators_key(make_client, make_settings):
    with RecordingServer(label_studio_serving_a_png) as label_studio:
        client = make_client(make_settings(label_studio_api_key=OPERATOR_LS_KEY))  # LABEL_STUDIO_URL unset
        setup(client, config=RECEIPTS, hostname=label_studio.url, access_token=SETUP_TOKEN)
        response = interactive(client, {"image": "/data/upload/1/r.png"}, RECEIPTS, "Sum it up", "image")
        assert response.status_code == 200, response.json
        assert [r.headers["authorization"] for r in label_studio.requests] == [f"Token {SETUP_TOKEN}"]
        assert OPERATOR_LS_KEY not in label_studio.seen()


def test_the_operator_key_goes_to_label_studio_url(make_client, make_settings):
    with RecordingServer(lambda request, handler: send(handler, 404, {})) as label_studio:
        client = make_client(make_settings(label_studio_url=label_studio.url, label_studio_api_key=OPERATOR_LS_KEY))
        setup(client, config=RECEIPTS, hostname="http://elsewhere.example", access_token=SETUP_TOKEN)
        interactive(client, {"image": "/data/upload/1/r.png"}, RECEIPTS, "Sum it up", "image")
        assert [r.headers["authorization"] for r in label_studio.requests] == [f"Token {OPERATOR_LS_KEY}"]


def test_a_private_label_studio_named_by_setup_gets_no_push(make_settings, store, fake_label_studio, fake_llm):
    """What the worker does with a job whose project's /setup named a loopback host: push nothing, say why."""
    settings = make_settings(allowed_private_hosts=[], cache_ttl=0)  # the default policy
    store.save_setup("41", ProjectSetup(SARCASM, fake_label_studio.url, LS_TOKEN))
    store.save_prompt("41", "Sarcastic?")
    services = Services.build(settings, store)
    ctx = services.projects.context("41", None, None)
    job_id = services.jobs.create(services.projects.snapshot(ctx), [1], 10)
    run_chunk(ChunkRunner(settings, services.projects, services.predictor, services.jobs), job_id, 0, 0, "test")
    status = services.jobs.status(job_id)
    assert (status.failed, status.pushed) == (1, 0)
    assert "a private address taken from /setup" in status.errors[0]["error"]
    assert "ALLOWED_PRIVATE_HOSTS" in status.errors[0]["error"]
    assert fake_label_studio.seen_authorization == []


# --- image URLs: every spelling of a private address is refused -------------------------------------------------

LOOPBACK_SPELLINGS = [
    "http://127.1/x.png",
    "http://2130706433/x.png",
    "http://0x7f.0.0.1/x.png",
    "http://0177.0.0.1/x.png",
    "http://ip6-localhost/x.png",
    "http://localhost./x.png",
    "http://[::ffff:127.0.0.1]/x.png",
    "http://[::ffff:7f00:1]/x.png",
    "http://[2002:7f00:1::]/x.png",  # 6to4 around 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/x.png",  # NAT64 around 169.254.169.254
    "http://169.254.169.254/latest/meta-data.png",
    "http://100.64.0.1/x.png",  # shared address space (carrier NAT)
    "http://0.0.0.0/x.png",
]


def test_image_urls_on_private_addresses_are_refused_in_every_spelling(make_client, make_settings, fake_llm):
    client = make_client(make_settings(allowed_private_hosts=[]))
    tasks = [{"id": i, "data": {"image": url}} for i, url in enumerate(LOOPBACK_SPELLINGS)]
    body = {"tasks": tasks, "project": PROJECT, "label_config": RECEIPTS, "params": {"context": None}}
    results = client.post("/predict", json=body | {"params": {"context": prompt_context("p", "image")}}).json
    for url, result in zip(LOOPBACK_SPELLINGS, results["results"], strict=True):
        assert "on a private address: only public URLs go to the provider" in result.get("error", ""), url
    assert fake_llm.chat_requests == []


# --- one bad task fails alone ---------------------------------------------------------------------------------


def test_a_task_with_a_lone_surrogate_fails_alone_in_a_request(make_client, fake_llm):
    client = make_client()
    tasks = [{"id": i, "data": {"text": LONE_SURROGATE if i == 1 else f"text {i}"}} for i in range(3)]
    body = {"tasks": tasks, "project": PROJECT, "label_config": SARCASM, "params": {"context": prompt_context("p")}}
    response = post_raw(client, "/predict", body)
    assert response.status_code == 200
    first, bad, last = response.json["results"]
    assert "result" in first and "result" in last
    assert bad["error"].startswith("task data.text holds a lone surrogate")
    assert len(fake_llm.chat_requests) == 2


def test_an_annotators_task_with_a_lone_surrogate_is_a_422_naming_the_field(make_client, fake_llm):
    body = {
        "tasks": [{"id": 1, "data": {"dialogue": [{"role": "user", "content": LONE_SURROGATE}]}}],
        "project": PROJECT,
        "label_config": labeling_config("chat"),
        "params": {"context": prompt_context("p", "chat")},
    }
    response = post_raw(make_client(), "/predict", body)
    assert response.status_code == 422
    assert "data.dialogue[0].content holds a lone surrogate" in response.json["error"]


def garbage_for_some(request: Recorded, handler) -> None:
    """A provider (or a proxy) answering 200 with what is not a chat completion, for prompts saying "garbage"."""
    if b"garbage" not in request.body:
        send(handler, 200, chat_completion("Sarcastic"))
    elif b"broken" in request.body:
        send_raw(handler, "application/json", b"{not json")
    elif b"html" in request.body:
        send_raw(handler, "text/html", b"<html>hi</html>")
    else:
        send(handler, 200, {"unexpected": True, "choices": [{"index": 0}]})


def send_raw(handler, content_type: str, body: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.mark.parametrize(
    ("garbage", "said"),
    [
        ("garbage", "answered 200 with a body that is not a chat completion"),
        ("garbage html", "answered 200 with a body that is not a chat completion: '<html>hi</html>'"),
        ("garbage broken", "answered an unreadable body: Expecting property name"),
    ],
)
def test_a_provider_body_that_is_not_a_completion_is_a_502_not_a_500(make_client, make_settings, garbage, said):
    with RecordingServer(garbage_for_some) as odd_provider:
        client = make_client(make_settings(openai_base_url=f"{odd_provider.url}/v1", llm_max_retries=0))
        response = interactive(client, {"text": garbage})
        assert response.status_code == 502
        assert said in response.json["error"]


def test_a_provider_body_that_is_not_a_completion_fails_only_its_task(make_client, make_settings):
    with RecordingServer(garbage_for_some) as odd_provider:
        client = make_client(make_settings(openai_base_url=f"{odd_provider.url}/v1", llm_max_retries=0))
        tasks = [{"id": i, "data": {"text": text}} for i, text in enumerate(["fine", "garbage", "also fine"])]
        body = {"tasks": tasks, "project": PROJECT, "label_config": SARCASM, "params": {"context": prompt_context("p")}}
        first, bad, last = client.post("/predict", json=body).json["results"]
        assert "result" in first and "result" in last
        assert "not a chat completion" in bad["error"]


# --- hostile input: 4xx, never a 500 -------------------------------------------------------------------------

SURROGATE_ENTRY_POINTS = [
    ("/setup", {"project": PROJECT, "schema": SARCASM.replace("Sarcastic", LONE_SURROGATE)}, "schema"),
    (
        "/setup",
        {"project": PROJECT, "schema": SARCASM, "extra_params": {"model": LONE_SURROGATE}},
        "extra_params.model",
    ),
    (
        "/setup",
        {"project": PROJECT, "schema": SARCASM, "extra_params": json.dumps({"model": LONE_SURROGATE})},
        "extra_params.model",
    ),
    (
        "/predict",
        {"tasks": [{"id": 1, "data": {"text": "t"}}], "label_config": SARCASM.replace("Sarcastic", LONE_SURROGATE)},
        "label_config",
    ),
    (
        "/predict",
        {
            "tasks": [{"id": 1, "data": {"text": "t"}}],
            "label_config": SARCASM,
            "params": {"context": prompt_context(LONE_SURROGATE)},
        },
        "params.context.result[0].value.text[0]",
    ),
    (
        "/webhook",
        {
            "action": "ANNOTATION_CREATED",
            "project": {"id": 41, "label_config": SARCASM},
            "annotation": {"result": [{"from_name": "prompt", "value": {"text": [LONE_SURROGATE]}}]},
        },
        "annotation.result[0].value.text[0]",
    ),
]


@pytest.mark.parametrize(("path", "body", "field"), SURROGATE_ENTRY_POINTS)
def test_lone_surrogates_outside_task_data_are_a_400_naming_the_field(make_client, fake_llm, path, body, field):
    response = post_raw(make_client(), path, body)
    assert response.status_code == 400, response.json
    assert f"{field} holds a lone surrogate" in response.json["error"]
    assert fake_llm.chat_requests == []


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("path", ["/predict", "/setup", "/webhook"])
@pytest.mark.parametrize(
    "raw",
    ['{"tasks": ' + DEEP + "}", '{"project": "1.1", "extra_params": ' + DEEP + "}", "[" * 100_000],
    ids=["closed", "in-extra-params", "never-closed"],  # never closed: the parser recurses before it sees why
)
def test_deeply_nested_json_is_a_400(make_client, path, raw):
    response = make_client().post(path, data=raw, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.json["error"] == "request body is refused: JSON nested more than 100 levels deep"


def test_deeply_nested_extra_params_in_a_string_are_a_400(make_client):
    extra_params = '{"model": ' + DEEP + "}"
    response = setup(make_client(), extra_params)
    assert response.status_code == 400
    assert response.json["error"] == "extra_params is refused: JSON nested more than 100 levels deep"


def test_nesting_within_the_bound_is_fine(make_client, fake_llm):
    data = {"text": "hi", "deep": json.loads("[" * 90 + "]" * 90)}
    assert interactive(make_client(), data).status_code == 200


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE View SYSTEM "http://127.0.0.1:9/evil.dtd">',
        '<!DOCTYPE View PUBLIC "-//X//Y" "http://127.0.0.1:9/evil.dtd">',
        "<!DOCTYPE View>",
    ],
)
def test_a_labeling_config_with_any_doctype_is_refused(make_client, doctype):
    response = setup(make_client(), config=doctype + SARCASM)
    assert response.status_code == 400
    assert "must not declare a DTD or entities" in response.json["error"]


def test_a_redirect_from_the_providers_endpoint_is_not_followed_with_the_key(make_client, make_settings, provider):
    """httpx drops Authorization on a redirect to another host, but not Azure's api-key header: no redirects."""

    def redirect(request, handler):
        send(handler, 307, {}, {"Location": f"{provider.url}/openai/deployments/d/chat/completions"})

    with RecordingServer(redirect) as endpoint:
        settings = make_settings(openai_provider="azure", azure_resource_endpoint=endpoint.url, llm_max_retries=0)
        response = interactive(make_client(settings), {"text": "hi"})
        assert response.status_code == 502 and "answered 307" in response.json["error"]
        assert len(endpoint.requests) == 1 and provider.requests == []
