"""/metrics in Prometheus format, fed by every process through Redis; tokens and cost per job."""

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.domain.estimation.pricing import TokenUsage, usage_cost
from tests.conftest import labeling_config
from tests.integration.test_api import post_predict, post_setup, prompt_context
from tests.integration.test_worker import stack  # noqa: F401  (the fixture)


def samples(client) -> dict[tuple, float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_requests_llm_calls_tokens_cache_and_latency(make_client, make_settings, fake_llm, store):
    client = make_client(make_settings(cache_ttl=60))
    config = labeling_config("sarcasm")
    post_setup(client, config)
    for _ in range(2):  # the second is a cache hit
        post_predict(client, [{"id": 1, "data": {"text": "x"}}], config, prompt_context("p", "text"))
    fake_llm.fail_next(401)
    post_predict(client, [{"id": 2, "data": {"text": "y"}}], config, prompt_context("p", "text"))
    client.get("/nope")

    found = samples(client)
    model = (("model", "gpt-3.5-turbo"), ("provider", "openai"))
    assert (
        found[("llm_backend_http_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "200")))] == 2
    )
    assert (
        found[("llm_backend_http_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "502")))] == 1
    )
    assert (
        found[("llm_backend_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    )
    assert found[("llm_backend_llm_calls_total", tuple(sorted((*model, ("outcome", "ok")))))] == 1
    assert found[("llm_backend_llm_calls_total", tuple(sorted((*model, ("outcome", "refused")))))] == 1
    [call] = fake_llm.live_completions
    tokens_in, tokens_out = call.answer["usage"]["prompt_tokens"], call.answer["usage"]["completion_tokens"]
    assert found[("llm_backend_llm_tokens_total", tuple(sorted((*model, ("direction", "in")))))] == tokens_in
    assert found[("llm_backend_llm_tokens_total", tuple(sorted((*model, ("direction", "out")))))] == tokens_out
    assert found[("llm_backend_llm_cache_total", (("result", "hit"),))] == 1
    assert found[("llm_backend_llm_cache_total", (("result", "miss"),))] == 2
    assert found[("llm_backend_interactive_seconds_count", ())] == 3
    assert found[("llm_backend_llm_seconds_count", model)] == 2
    assert found[("llm_backend_jobs", (("state", "running"),))] == 0
    assert found[("llm_backend_queue_depth", (("queue", "batch"),))] == 0
    assert store.usage("7") == {"gpt-3.5-turbo": {"in": tokens_in, "out": tokens_out, "cached": 0}}


def test_a_long_prompt_is_served_from_the_providers_cache_after_the_first_task(
    make_client, make_settings, fake_llm, store
):
    """The fixed part (the prompt: 1,500 tokens by the fake's rule) comes first, so every task after the first
    shares it with an earlier request; the provider reports those tokens as cached, and they are counted."""
    client = make_client(make_settings(output_mode="text"))
    config = labeling_config("sarcasm")
    post_setup(client, config)
    prompt = "Decide whether the text is sarcastic. " * 160  # 6,080 characters: 1,520 of the fake's tokens
    for task in (1, 2, 3):
        post_predict(
            client, [{"id": task, "data": {"text": f"short text {task}"}}], config, prompt_context(prompt, "text")
        )

    first, *later = [call.answer["usage"] for call in fake_llm.live_completions]
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    assert [usage["prompt_tokens_details"]["cached_tokens"] for usage in later] == [1536, 1536]
    cached = sum(usage["prompt_tokens_details"]["cached_tokens"] for usage in later)
    tokens_in = sum(usage["prompt_tokens"] for usage in [first, *later])
    found = samples(client)
    model = (("model", "gpt-3.5-turbo"), ("provider", "openai"))
    assert found[("llm_backend_llm_tokens_total", tuple(sorted((*model, ("direction", "cached")))))] == cached
    assert found[("llm_backend_llm_tokens_total", tuple(sorted((*model, ("direction", "in")))))] == tokens_in
    assert store.usage("7")["gpt-3.5-turbo"]["cached"] == cached


def test_cached_tokens_cost_the_cached_price():
    prices = {"gpt-4o-mini": (0.15, 0.60, 0.075), "no-cache-price": (1.0, 2.0)}
    assert usage_cost(prices["gpt-4o-mini"], TokenUsage(1_000_000, 0, 1_000_000)) == 0.075
    assert usage_cost(prices["gpt-4o-mini"], TokenUsage(2_000_000, 0, 1_000_000)) == 0.225
    assert usage_cost(prices["no-cache-price"], TokenUsage(1_000_000, 0, 1_000_000)) == 1.0  # the input price


def test_cost_comes_from_the_price_table():
    prices = {"gpt-4o-mini": (0.15, 0.60)}
    assert usage_cost(prices.get("gpt-4o-mini"), TokenUsage(1_000_000, 500_000)) == 0.45
    assert usage_cost(prices.get("unknown-model"), TokenUsage(10, 10)) is None


def test_price_table_is_configurable(make_settings, monkeypatch):
    monkeypatch.setenv("LLM_PRICES", '{"my-model": [1, 2], "gpt-4o": [3, 12]}')
    from shared.domain.config import load_settings

    prices = load_settings().prices
    assert prices["my-model"] == (1.0, 2.0) and prices["gpt-4o"] == (3.0, 12.0)
    assert prices["gpt-4o-mini"] == (0.15, 0.60, 0.075)


@pytest.mark.prose_answers
def test_the_backlog_counts_what_the_llm_still_has_to_do_not_what_waits_for_label_studio(
    stack,  # noqa: F811
    fake_label_studio,
    fake_llm,
):
    """Issue #25, item 6: what to scale workers on.  The backlog (tasks no window started) and the calls in flight
    come from the job records and the workers' reports; while Label Studio takes no predictions the backlog falls to
    0 as the LLM finishes, and what waits for Label Studio is a series of its own."""
    tasks, in_flight = 120, 2 * 4  # prefork children × LLM_CONCURRENCY of the stack's worker
    fake_label_studio.taking_imports = False
    fake_llm.delay = 1.0
    stack.worker()
    assert scaling_series(stack.client) == (0, 0, 0), "nothing to do yet"
    job_id = stack.submit(tasks)

    seen = []
    while not seen or seen[-1][1] != in_flight:
        done_before = stack.status(job_id)["done"]
        backlog, flying, _waiting = scaling_series(stack.client)
        done_after = stack.status(job_id)["done"]
        seen.append((backlog, flying))
        assert tasks - done_after <= backlog + flying <= tasks - done_before, "every task not done is counted once"
        assert done_after < tasks, f"the window never showed {in_flight} calls in flight: {seen}"
        time.sleep(0.2)

    stack.wait(job_id, until=lambda status: status["done"] == tasks)
    deadline = time.monotonic() + 10
    while (series := scaling_series(stack.client)) != (0, 0, tasks):
        assert time.monotonic() < deadline, f"with every task predicted and Label Studio away: {series}"
        time.sleep(0.2)
    print(f"queue depth while Label Studio is away: {samples(stack.client)[QUEUE_DEPTH]}")

    fake_label_studio.taking_imports = True
    assert stack.wait(job_id)["state"] == "done"
    assert scaling_series(stack.client) == (0, 0, 0)


QUEUE_DEPTH = ("llm_backend_queue_depth", (("queue", "batch"),))


def scaling_series(client) -> tuple[float, float, float]:
    """The backlog, the calls in flight and the predictions waiting for Label Studio, from one scrape."""
    found = samples(client)
    return (
        found[("llm_backend_backlog_tasks", (("queue", "batch"),))],
        found[("llm_backend_in_flight_tasks", (("queue", "batch"),))],
        found[("llm_backend_predictions_waiting_for_label_studio", ())],
    )
