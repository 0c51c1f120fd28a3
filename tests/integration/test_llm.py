"""The LLM client against the fake OpenAI-compatible server, over HTTP, through the real openai client."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.adapters.llm import LLM, OutputRequest, _load_tls_settings, tls_settings
from shared.domain.config import ExtraParams
from shared.domain.digests import endpoint_key
from shared.domain.errors import LLMError
from tests.conftest import TEST_API_KEY

MESSAGES = [{"role": "user", "content": "Say hi"}]


def options_for(settings, **extra):
    return settings.for_project(ExtraParams.parse(extra)).llm


def test_openai_provider_sends_model_n_temperature_and_key(fake_llm, make_settings, store):
    settings = make_settings(temperature=0.3, num_responses=2, openai_model="gpt-4o-mini")
    answer = LLM(store, 0).complete(settings.defaults.llm, MESSAGES)
    assert answer.texts == ["ANSWER to: Say hi", "ANSWER to: Say hi #2"]
    # the fake counts 4 characters a token: the 50-character prompt JSON, answers of 17 and 20 characters
    assert (answer.prompt_tokens, answer.completion_tokens, answer.cached) == (13, 5 + 5, False)
    [request] = fake_llm.chat_requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert request.body == {"model": "gpt-4o-mini", "messages": MESSAGES, "n": 2, "temperature": 0.3}


def test_azure_provider_uses_deployment_and_api_version(fake_llm, llm_server, make_settings, store):
    settings = make_settings(
        openai_provider="azure",
        azure_resource_endpoint=llm_server.url + "/",
        azure_deployment_name="my-deployment",
        azure_api_version="2024-06-01",
    )
    LLM(store, 0).complete(settings.defaults.llm, MESSAGES)
    [request] = fake_llm.chat_requests
    assert request.path == "/openai/deployments/my-deployment/chat/completions?api-version=2024-06-01"
    assert request.headers["api-key"] == TEST_API_KEY


def test_ollama_provider_uses_its_endpoint_without_a_key(fake_llm, llm_server, make_settings, store):
    settings = make_settings(
        openai_provider="ollama", openai_api_key=None, ollama_endpoint=llm_server.url + "/v1", allowed_models=["llama3"]
    )
    answer = LLM(store, 0).complete(options_for(settings, model="llama3"), MESSAGES)
    assert answer.texts == ["ANSWER to: Say hi"]
    [request] = fake_llm.chat_requests
    assert request.body["model"] == "llama3"


def test_rate_limit_is_retried_after_retry_after(fake_llm, settings, store):
    fake_llm.fail_next(429, headers={"Retry-After": "1"}, message="Rate limit reached")
    answer = LLM(store, 0).complete(settings.defaults.llm, MESSAGES)
    assert answer.texts == ["ANSWER to: Say hi"]
    first, second = fake_llm.chat_requests
    assert second.at - first.at >= 0.9, "the client must wait as long as Retry-After says"


def test_server_errors_are_retried(fake_llm, settings, store):
    fake_llm.fail_next(503, times=2)
    assert LLM(store, 0).complete(settings.defaults.llm, MESSAGES).texts == ["ANSWER to: Say hi"]
    assert len(fake_llm.chat_requests) == 3


def test_retries_run_out_with_a_retryable_error(fake_llm, make_settings, store):
    settings = make_settings(llm_max_retries=1)
    fake_llm.fail_next(500, times=5, message="upstream overloaded")
    with pytest.raises(LLMError) as caught:
        LLM(store, 0).complete(settings.defaults.llm, MESSAGES)
    assert caught.value.retryable and caught.value.status_code == 500
    assert "openai answered 500: upstream overloaded" in str(caught.value)
    assert len(fake_llm.chat_requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403])
def test_client_errors_fail_at_once_with_the_providers_message(fake_llm, settings, store, status):
    fake_llm.fail_next(status, message=f"Incorrect API key provided: {TEST_API_KEY}")
    with pytest.raises(LLMError) as caught:
        LLM(store, 0).complete(settings.defaults.llm, MESSAGES)
    assert len(fake_llm.chat_requests) == 1
    assert not caught.value.retryable and caught.value.status_code == status
    assert f"openai answered {status}: Incorrect API key provided: ***" == str(caught.value)
    assert TEST_API_KEY not in str(caught.value)


def test_unreachable_provider_is_a_clear_retryable_error(make_settings, store):
    settings = make_settings(openai_base_url="http://127.0.0.1:9/v1", llm_max_retries=0)
    with pytest.raises(LLMError, match="cannot reach openai at http://127.0.0.1:9/v1") as caught:
        LLM(store, 0).complete(settings.defaults.llm, MESSAGES)
    assert caught.value.retryable


def test_missing_key_and_endpoint_are_named(make_settings, store):
    with pytest.raises(LLMError, match="no API key for provider openai: set OPENAI_API_KEY"):
        LLM(store, 0).complete(make_settings(openai_api_key=None).defaults.llm, MESSAGES)
    azure = make_settings(openai_provider="azure")
    with pytest.raises(LLMError, match="needs AZURE_RESOURCE_ENDPOINT"):
        LLM(store, 0).complete(azure.defaults.llm, MESSAGES)


def test_answers_are_cached_by_everything_that_decides_them(fake_llm, settings, store):
    llm = LLM(store, 60)
    first = llm.complete(settings.defaults.llm, MESSAGES)
    again = llm.complete(settings.defaults.llm, MESSAGES)
    assert again.cached and again.texts == first.texts
    assert len(fake_llm.chat_requests) == 1
    llm.complete(options_for(settings, temperature=0.1), MESSAGES)
    llm.complete(settings.defaults.llm, [{"role": "user", "content": "Say bye"}])
    assert len(fake_llm.chat_requests) == 3


def test_cache_ttl_zero_disables_the_cache(fake_llm, settings, store):
    llm = LLM(store, 0)
    llm.complete(settings.defaults.llm, MESSAGES)
    assert not llm.complete(settings.defaults.llm, MESSAGES).cached
    assert len(fake_llm.chat_requests) == 2
    assert list(store.redis.scan_iter("*")) == []


def test_one_client_per_configuration_and_thread(make_settings, store):
    settings = make_settings(allowed_models=["other"])
    llm = LLM(store, 0)
    assert llm.client(settings.defaults.llm) is llm.client(settings.defaults.llm)
    assert llm.client(options_for(settings, model="other")) is not llm.client(settings.defaults.llm)
    with ThreadPoolExecutor(1) as other_thread:
        theirs = other_thread.submit(lambda: (llm.client(settings.defaults.llm), llm.client(settings.defaults.llm)))
        first, second = theirs.result()
    assert first is second and first is not llm.client(settings.defaults.llm)


def test_threads_building_their_first_clients_at_once_load_the_certificates_once():
    """A worker's first chunk starts a hundred threads that each build a client: each loading the certificates
    (30 ms of CPU) delayed the job's first LLM calls by a second."""
    _load_tls_settings.cache_clear()
    together = threading.Barrier(16)

    def first_client_settings(_):
        together.wait()
        return tls_settings()

    with ThreadPoolExecutor(16) as threads:
        contexts = list(threads.map(first_client_settings, range(16)))
    assert len({id(context) for context in contexts}) == 1


# --- output modes -------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["label"],
    "additionalProperties": False,
}


def test_json_schema_mode_sends_the_schema_and_keeps_the_logprobs(fake_llm, settings, store):
    fake_llm.reply = lambda messages, index: {"label": "yes"}
    answer = LLM(store, 0).complete(settings.defaults.llm, MESSAGES, output=OutputRequest("json_schema", SCHEMA))
    assert (answer.mode, answer.texts) == ("json_schema", ['{"label": "yes"}'])
    assert "".join(token["token"] for token in answer.logprobs) == answer.texts[0]
    assert {token["logprob"] for token in answer.logprobs} == {-0.01}
    [request] = fake_llm.chat_requests
    assert request.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "annotation", "schema": SCHEMA, "strict": True},
    }
    assert request.body["logprobs"] is True


def test_tools_mode_answers_with_the_call_arguments_and_no_logprobs(fake_llm, settings, store):
    fake_llm.reply = lambda messages, index: {"label": "no"}
    answer = LLM(store, 0).complete(settings.defaults.llm, MESSAGES, output=OutputRequest("tools", SCHEMA))
    assert (answer.mode, answer.texts, answer.logprobs) == ("tools", ['{"label": "no"}'], None)
    assert answer.messages() == [{"content": '{"label": "no"}', "refusal": None}]
    [request] = fake_llm.chat_requests
    assert request.body["tool_choice"] == {"type": "function", "function": {"name": "annotation"}}
    assert "logprobs" not in request.body


def test_auto_on_an_older_azure_api_starts_with_tools(fake_llm, llm_server, make_settings, store):
    settings = make_settings(
        openai_provider="azure",
        azure_resource_endpoint=llm_server.url,
        azure_deployment_name="d",
        azure_api_version="2024-06-01",  # response_format json_schema came with 2024-08-01-preview
    )
    fake_llm.reply = lambda messages, index: {"label": "yes"}
    answer = LLM(store, 0).complete(settings.defaults.llm, MESSAGES, output=OutputRequest("auto", SCHEMA))
    assert answer.mode == "tools" and "tools" in fake_llm.chat_requests[0].body


def test_the_cache_keeps_mode_and_logprobs_and_tells_requests_apart(fake_llm, settings, store):
    llm = LLM(store, 60)
    fake_llm.reply = lambda messages, index: {"label": "yes"}
    first = llm.complete(settings.defaults.llm, MESSAGES, output=OutputRequest("json_schema", SCHEMA))
    again = llm.complete(settings.defaults.llm, MESSAGES, output=OutputRequest("json_schema", SCHEMA))
    assert again.cached and (again.mode, again.logprobs, again.texts) == (first.mode, first.logprobs, first.texts)
    other_schema = {**SCHEMA, "properties": {"label": {"type": "string", "enum": ["yes", "no", "maybe"]}}}
    llm.complete(settings.defaults.llm, MESSAGES, output=OutputRequest("json_schema", other_schema))
    llm.complete(settings.defaults.llm, MESSAGES, output=OutputRequest("tools", SCHEMA))
    fake_llm.reply = None
    llm.complete(settings.defaults.llm, MESSAGES, output=OutputRequest("text"))  # plain, with logprobs
    llm.complete(settings.defaults.llm, MESSAGES)  # plain, without
    assert len(fake_llm.chat_requests) == 5


def test_a_schema_the_provider_refuses_falls_back_but_is_not_remembered(fake_llm, settings, store):
    loose = {"type": "object", "properties": {"label": {"type": "string"}}}  # not strict: no required list
    fake_llm.reply = lambda messages, index: "yes"
    answer = LLM(store, 0).complete(settings.defaults.llm, MESSAGES, output=OutputRequest("auto", loose))
    assert (answer.mode, answer.texts) == ("text", ["yes"])
    first, second, third = fake_llm.chat_requests
    assert (first.status, second.status, third.status) == (400, 400, 200)
    assert first.error.startswith("Invalid schema for response_format 'annotation'")
    assert store.refused_features(endpoint_key(settings.defaults.llm)) == set()
