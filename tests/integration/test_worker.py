"""Batches through a real ``llm-backend worker`` process on the real Redis.

The API runs in the test process (Flask's test client) and queues jobs on the real broker; the
worker calls the fake OpenAI-compatible server and pushes into the recording Label Studio stand-in,
both over HTTP.
"""

from __future__ import annotations

import collections
import json
import time
import uuid

import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.adapters.jobs import JobState
from tests.conftest import LS_TOKEN, TEST_API_KEY, labeling_config
from tests.integration.processes import BackendProcess, llm_backend_env, wait_for_job

# The fake model answers in prose, as the reference's did (OUTPUT_MODE=text); structured modes: test_structured_api.py
pytestmark = pytest.mark.prose_answers

TOKEN = LS_TOKEN
PROJECT = "31.1700000000"
WORKER_SETTINGS = {
    "OUTPUT_MODE": "text",
    "BATCH_CHUNK_SIZE": "20",
    "LLM_CONCURRENCY": "4",
    "BROKER_VISIBILITY_TIMEOUT": "5",
    "BATCH_CLAIM_SECONDS": "6",
}


@pytest.fixture
def stack(make_client, make_settings, real_store, redis_prefix, llm_server, fake_llm, fake_label_studio, tmp_path):
    """The API in-process, a way to start worker processes, and the project set up with a prompt."""
    settings = make_settings(redis_key_prefix=redis_prefix, batch_chunk_size=20)
    client = make_client(settings, real_store)
    config = labeling_config("sarcasm")
    client.post(
        "/setup", json={"project": PROJECT, "schema": config, "hostname": fake_label_studio.url, "access_token": TOKEN}
    )
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 31},
        "annotation": {"result": [{"from_name": "prompt", "value": {"text": ["Sarcastic or not?"]}}]},
    }
    version = client.post("/webhook", json=event).json["model_version"]
    fake_llm.reply = lambda messages, index: "Not Sarcastic" if "even" in str(messages) else "Sarcastic"
    workers: list[BackendProcess] = []

    class Stack:
        def __init__(self) -> None:
            self.client, self.config, self.version = client, config, version

        def worker(self, name: str | None = None, **overrides: str) -> BackendProcess:
            """A worker process; ``name`` its Celery node name (by default one of its own)."""
            env = llm_backend_env(
                llm_server.url,
                redis_prefix,
                **({"LOG_LEVEL": "INFO"} | WORKER_SETTINGS | overrides),
            )
            name = name or f"test-{uuid.uuid4().hex[:8]}@%h"
            process = BackendProcess(
                ["worker", "--concurrency", "2", "-n", name], env, tmp_path / f"worker-{len(workers)}.log"
            )
            workers.append(process.start())
            process.wait_for_log(" ready.")
            return process

        def submit(self, count: int) -> str:
            self.started = time.monotonic()
            tasks = [{"id": i, "data": {"text": f"text {i} {'even' if i % 2 == 0 else 'odd'}"}} for i in range(count)]
            fake_label_studio.hold_tasks(31, tasks)
            body = {"tasks": tasks, "project": PROJECT, "label_config": config, "params": {"context": None}}
            response = client.post("/predict", json=body)
            assert response.status_code == 200 and response.json["results"] == []
            return response.json["job"]

        def status(self, job_id: str) -> dict:
            return client.get(f"/jobs/{job_id}").json

        def logs(self) -> str:
            """What every worker started so far has logged."""
            return "".join(process.log for process in workers)

        def wait(self, job_id: str, timeout: float = 120, until=lambda status: JobState(status["state"]).finished):
            return wait_for_job(lambda: self.status(job_id), until, workers, timeout)

    yield Stack()
    for process in workers:
        process.stop()


def assert_once_each(fake_label_studio, count, version, config):
    by_task = fake_label_studio.predictions_by_task()
    assert sorted(by_task) == list(range(count)), "every task has a prediction"
    duplicates = {task: len(found) for task, found in by_task.items() if len(found) != 1}
    assert duplicates == {}, "no task has two"
    interface = LabelInterface(config)
    for task, [prediction] in by_task.items():
        assert prediction["model_version"] == version
        assert interface.validate_prediction(prediction, return_errors=True) == []
        choices = {r["from_name"]: r["value"] for r in prediction["result"]}["sentiment"]["choices"]
        assert choices == (["Not Sarcastic"] if task % 2 == 0 else ["Sarcastic"])


def test_200_task_batch_lands_once_per_task(stack, fake_label_studio, fake_llm):
    worker = stack.worker(LOG_LEVEL="DEBUG")
    job_id = stack.submit(200)
    status = stack.wait(job_id)
    assert (status["state"], status["total"], status["done"], status["failed"], status["pushed"]) == (
        "done",
        200,
        200,
        0,
        200,
    )
    assert_once_each(fake_label_studio, 200, stack.version, stack.config)
    assert len(fake_llm.chat_requests) == 200
    assert fake_label_studio.import_calls <= 5, "the pusher gathers several chunks of 20 into one bulk import"
    assert "llm_backend.predict_chunk" in worker.log and job_id in worker.log
    assert "mingle" not in worker.log, "a worker starts without asking its neighbours (cli/main.py WORKER_OPTIONS)"
    for secret in (TEST_API_KEY, TOKEN):
        assert secret not in worker.log, "no secret in the worker's log, even at DEBUG"


def test_second_retrieve_while_running_adds_nothing(stack, fake_label_studio, fake_llm):
    fake_llm.delay = 0.2  # the window predicts 8 tasks at a time: the first job is still predicting at the second
    stack.worker()
    first = stack.submit(100)
    stack.wait(first, until=lambda status: status["done"] >= 20)
    second = stack.submit(100)  # Label Studio would only send the tasks without a prediction; we send all
    for job_id in (first, second):
        assert stack.wait(job_id)["state"] == "done"
    assert_once_each(fake_label_studio, 100, stack.version, stack.config)
    calls = collections.Counter(str(r.body["messages"]) for r in fake_llm.chat_requests)
    assert max(calls.values()) == 1 and len(calls) == 100


@pytest.mark.fault_recovery
def test_worker_killed_mid_batch_then_restarted_still_lands_each_task_once(stack, fake_label_studio, fake_llm):
    fake_llm.delay = 0.1
    worker = stack.worker()
    job_id = stack.submit(300)
    stack.wait(job_id, until=lambda status: status["pushed"] >= 60)
    worker.kill()
    calls_at_kill = len(fake_llm.chat_requests)
    assert stack.status(job_id)["state"] == "running"

    stack.worker()
    status = stack.wait(job_id)

    assert (status["state"], status["done"], status["pushed"]) == ("done", 300, 300)
    assert_once_each(fake_label_studio, 300, stack.version, stack.config)
    calls = collections.Counter(str(r.body["messages"]) for r in fake_llm.chat_requests)
    assert len(calls) == 300
    in_flight = 2 * 4  # worker processes × LLM_CONCURRENCY: calls cut off by the kill may be made again
    assert sum(calls.values()) <= 300 + in_flight, f"{sum(calls.values())} calls, {calls_at_kill} before the kill"


def test_rate_limited_provider_still_gets_every_task_through(stack, fake_label_studio, fake_llm):
    fake_llm.fail_every = 3  # every third call: 429 with Retry-After: 1
    stack.worker(LLM_MAX_RETRIES="1")
    job_id = stack.submit(60)
    status = stack.wait(job_id)
    assert (status["state"], status["done"], status["failed"], status["pushed"]) == ("done", 60, 0, 60)
    assert_once_each(fake_label_studio, 60, stack.version, stack.config)
    assert sum(1 for r in fake_llm.chat_requests) > 60, "some calls were refused and retried"


def test_provider_503s_with_retry_after_still_get_every_task_through(stack, fake_label_studio, fake_llm):
    fake_llm.fail_every = 4
    fake_llm.fail_every_status = 503
    worker = stack.worker(LLM_MAX_RETRIES="0", BATCH_RETRY_MAX_DELAY="2", LOG_FORMAT="json")
    job_id = stack.submit(60)
    status = stack.wait(job_id)
    assert (status["state"], status["done"], status["failed"], status["pushed"]) == ("done", 60, 0, 60)
    assert_once_each(fake_label_studio, 60, stack.version, stack.config)
    records = [json.loads(line) for line in worker.log.splitlines() if line.startswith("{")]
    refused = [r for r in records if "answered 503" in r["message"]]
    assert refused and all(r["job_id"] == job_id and isinstance(r["task_id"], int) for r in refused)
    assert any(r["logger"].startswith("celery") for r in records), "Celery's own lines are JSON too"


def test_invalid_api_key_fails_the_job_fast_with_one_call_per_task(stack, fake_label_studio, fake_llm):
    fake_llm.fail_next(401, times=1000, message="Incorrect API key provided: sk-wr***ong")
    stack.worker()
    job_id = stack.submit(40)
    status = stack.wait(job_id, timeout=60)
    assert (status["state"], status["done"], status["failed"], status["pushed"]) == ("failed", 0, 40, 0)
    assert status["errors"][0]["error"] == "openai answered 401: Incorrect API key provided: sk-wr***ong"
    assert len(fake_llm.chat_requests) == 40
    assert fake_label_studio.predictions == []


@pytest.mark.fault_recovery
def test_label_studio_refusing_pushes_for_30_seconds_loses_nothing(stack, fake_label_studio, fake_llm):
    fake_label_studio.taking_imports = False
    stack.worker(BATCH_RETRY_MAX_DELAY="5")
    job_id = stack.submit(60)
    stack.wait(job_id, until=lambda status: status["done"] == 60)
    assert stack.status(job_id)["pushed"] == 0
    time.sleep(max(0.0, 30 - (time.monotonic() - stack.started)))
    fake_label_studio.taking_imports = True
    status = stack.wait(job_id, timeout=90)
    assert (status["state"], status["pushed"]) == ("done", 60)
    assert_once_each(fake_label_studio, 60, stack.version, stack.config)
    assert len(fake_llm.chat_requests) == 60, "predictions waited in Redis: no new LLM calls"


def test_a_job_stops_calling_the_llm_once_its_project_spent_project_daily_usd(stack, fake_label_studio, fake_llm):
    """Issue #23: nothing bounded what a job could spend. The first calls in flight finish (their cost is known
    only when they answer); every task after them fails with the reason, without an LLM call."""
    stack.worker(PROJECT_DAILY_USD="0.000000001")
    job_id = stack.submit(200)
    status = stack.wait(job_id)
    assert status["state"] == "partial" and status["done"] + status["failed"] == 200
    assert status["failed"] > 100, "only the calls in flight when the first answer came went on"
    assert len(fake_llm.chat_requests) == status["done"] == status["pushed"]
    assert all("reached PROJECT_DAILY_USD=1e-09" in error["error"] for error in status["errors"])
    assert "resets at" in status["errors"][0]["error"]
