"""Issue #23: the operator's bounds, with the default settings, on the real Redis.

Each test is one finding: tasks per request, active jobs per project, task data of stopped jobs, metric series
from request input, the daily spend of a project.  Evaluations: test_evaluations.py; the spend stopping a job
in a real worker process: test_worker.py.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.state import state_of
from shared.adapters.jobs import JobState
from shared.domain.config import Settings
from shared.domain.errors import LimitReached
from shared.domain.estimation.pricing import TokenUsage
from shared.spend import DailySpend
from tests.conftest import labeling_config
from tests.integration.test_api import post_predict, post_setup, prompt_context

pytestmark = pytest.mark.prose_answers
PROJECT = "7.1700000000"
CONFIG = labeling_config("sarcasm")
DEFAULTS = Settings.model_fields


def tasks(count: int, start: int = 0) -> list[dict]:
    return [{"id": i, "data": {"text": f"text {i}"}} for i in range(start, start + count)]


def set_up(client) -> None:
    """The project with Label Studio access (so many tasks become a job) and its annotators' prompt."""
    assert post_setup(client, CONFIG).status_code == 200
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 7},
        "annotation": {"result": [{"from_name": "prompt", "value": {"text": ["Sarcastic?"]}}]},
    }
    assert client.post("/webhook", json=event).status_code == 200


@pytest.fixture
def client(make_client, make_settings, real_store, redis_prefix):
    """The API in-process with the default bounds, on the real Redis."""
    client = make_client(make_settings(redis_key_prefix=redis_prefix), real_store)
    set_up(client)
    return client


def keys(real_store, pattern: str) -> list[str]:
    return list(real_store.redis.scan_iter(real_store.key(pattern), count=10_000))


def series(client, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for sample in family.samples
        if sample.name == name
    ]


# --- tasks per request ------------------------------------------------------------------------------------------


def test_the_default_admits_label_studios_100000_task_retrieve_predictions_and_refuses_one_more(
    client, real_store, fake_llm
):
    limit = DEFAULTS["max_tasks_per_request"].default
    assert limit == 100_000  # the README's promise: a 100,000-task project in one Retrieve Predictions

    refused = post_predict(client, tasks(limit + 1), CONFIG)

    assert refused.status_code == 413
    assert "100001 tasks in one request, over MAX_TASKS_PER_REQUEST=100000" in refused.json["error"]
    assert keys(real_store, "job:*") == [] and fake_llm.chat_requests == []  # nothing stored, nothing asked
    admitted = post_predict(client, tasks(limit), CONFIG)
    assert admitted.status_code == 200 and admitted.json["job"]
    assert client.get(f"/jobs/{admitted.json['job']}").json["total"] == limit


def test_an_import_webhook_over_max_tasks_per_request_is_refused_and_stores_nothing(
    make_client, make_settings, real_store, redis_prefix
):
    client = make_client(make_settings(redis_key_prefix=redis_prefix, auto_predict_on_import=True), real_store)
    set_up(client)
    event = {"action": "TASKS_CREATED", "project": {"id": 7, "label_config": CONFIG}, "tasks": tasks(100_001)}

    response = client.post("/webhook", json=event)

    assert response.status_code == 413 and "MAX_TASKS_PER_REQUEST=100000" in response.json["error"]
    assert keys(real_store, "job:*") == []


# --- active jobs per project ------------------------------------------------------------------------------------


def test_a_project_at_max_active_jobs_gets_429_with_the_reason_until_one_is_cancelled(client, real_store):
    limit = DEFAULTS["max_active_jobs_per_project"].default
    started = [post_predict(client, tasks(3, start=10 * n), CONFIG).json["job"] for n in range(limit)]

    refused = post_predict(client, tasks(3, start=1000), CONFIG)

    assert refused.status_code == 429
    assert f"project 7 has {limit} queued or running jobs, MAX_ACTIVE_JOBS_PER_PROJECT={limit}" in refused.json["error"]
    assert "POST /jobs/<id>/cancel" in refused.json["error"]
    assert len(client.get("/jobs?project=7").json["jobs"]) == limit  # the refused one was not stored
    assert client.post(f"/jobs/{started[0]}/cancel?project=7").json["state"] == "cancelled"
    assert post_predict(client, tasks(3, start=1000), CONFIG).status_code == 200


# --- task data of stopped jobs ----------------------------------------------------------------------------------


def test_a_cancelled_job_keeps_no_task_data(client, real_store):
    job_id = post_predict(client, tasks(1000), CONFIG).json["job"]
    assert len(keys(real_store, f"job:{job_id}:chunk:*")) == 10  # BATCH_CHUNK_SIZE=100 by default

    assert client.post(f"/jobs/{job_id}/cancel?project=7").json["state"] == "cancelled"

    assert keys(real_store, f"job:{job_id}:chunk:*") == []
    assert client.get(f"/jobs/{job_id}").json["total"] == 1000  # its status stays for JOB_TTL


def test_a_job_that_could_not_be_queued_keeps_no_task_data(make_client, make_settings, real_store, redis_prefix):
    client = make_client(make_settings(redis_key_prefix=redis_prefix), real_store)
    set_up(client)
    jobs = state_of(client.application).services.jobs
    job_id = post_predict(client, tasks(300), CONFIG).json["job"]

    jobs.abort(job_id, "could not queue the job: the broker is away")

    assert jobs.state(job_id) == JobState.FAILED and keys(real_store, f"job:{job_id}:chunk:*") == []


# --- metric series from request input ----------------------------------------------------------------------------


def test_made_up_http_methods_all_count_as_one_series(client):
    for n in range(200):
        client.open("/predict", method=f"BOGUS{n}")
    client.get("/health")

    methods = {labels["method"] for labels in series(client, "llm_backend_http_requests_total")}

    assert methods == {"POST", "GET", "other"}  # /setup, /health and /metrics, and the 200 made-up ones
    [other] = [
        sample.value
        for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for sample in family.samples
        if sample.name == "llm_backend_http_requests_total" and sample.labels["method"] == "other"
    ]
    assert other == 200


def test_model_names_a_project_makes_up_count_as_other(make_client, make_settings, fake_llm):
    """Even where the operator lets projects name any model (``ALLOWED_MODELS=*``)."""
    client = make_client(make_settings(allowed_models=["*"]))
    for n in range(20):
        made_up = f"model-{n}-" + "x" * 1000
        assert post_setup(client, CONFIG, extra_params={"model": made_up}).status_code == 200
        assert post_predict(client, tasks(1), CONFIG, prompt_context("Sarcastic?", "text")).status_code == 200
    post_setup(client, CONFIG)
    post_predict(client, tasks(1, start=5), CONFIG, prompt_context("Sarcastic?", "text"))

    models = {labels["model"] for labels in series(client, "llm_backend_llm_calls_total")}

    assert len(fake_llm.chat_requests) == 21
    assert models == {"other", "gpt-3.5-turbo"}  # OPENAI_MODEL keeps its name


# --- the daily spend of a project -------------------------------------------------------------------------------


def test_a_project_over_project_daily_usd_gets_429_naming_the_setting_and_when_it_resets(
    make_client, make_settings, real_store, redis_prefix, fake_llm
):
    assert DEFAULTS["project_daily_usd"].default is None  # off unless the operator sets it
    client = make_client(make_settings(redis_key_prefix=redis_prefix, project_daily_usd=1e-9), real_store)
    set_up(client)
    prompt = prompt_context("Sarcastic?", "text")

    first = post_predict(client, tasks(1), CONFIG, prompt)  # nothing spent yet today: it goes
    second = post_predict(client, tasks(1, start=1), CONFIG, prompt)
    several = post_predict(client, tasks(3, start=2), CONFIG, prompt)
    job = post_predict(client, tasks(5, start=10), CONFIG)

    assert first.status_code == 200
    for refused in (second, several, job):
        assert refused.status_code == 429
        assert "project 7 reached PROJECT_DAILY_USD=1e-09" in refused.json["error"]
        assert "resets at" in refused.json["error"] and "00:00 UTC" in refused.json["error"]
    assert len(fake_llm.chat_requests) == 1 and keys(real_store, "job:*") == []
    [day] = keys(real_store, "project:7:spend:*")
    assert float(real_store.redis.get(day)) > 1e-9 and 0 < real_store.redis.ttl(day) <= 2 * 24 * 3600


def test_the_days_spend_counts_priced_tokens_batch_api_ones_at_the_discount_and_not_unpriced_models(
    make_settings, real_store
):
    spend = DailySpend(make_settings(project_daily_usd=0.3), real_store)
    million_in = TokenUsage(tokens_in=1_000_000)

    spend.record("7", "gpt-4o-mini", million_in)  # 0.15 USD per million input tokens
    spend.record("7", "gpt-4o-mini", million_in, via_batch=True)  # at LLM_BATCH_DISCOUNT (0.5)
    spend.record("7", "a-model-without-a-price", million_in)
    spend.check("7")  # 0.225 of 0.3: still allowed
    spend.record("7", "gpt-4o-mini", million_in)

    [day] = keys(real_store, "project:7:spend:*")
    assert float(real_store.redis.get(day)) == pytest.approx(0.375)
    with pytest.raises(LimitReached, match=r"project 7 reached PROJECT_DAILY_USD=0.3 \(spent 0.3750 USD today"):
        spend.check("7")
    spend.check("8")  # another project's day is its own
