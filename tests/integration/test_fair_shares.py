"""Jobs of several projects share the workers, and a job can be paused, resumed and held to a budget: real
``llm-backend worker`` processes on the real Redis, the fake LLM and the Label Studio stand-in over HTTP.

Each job keeps only ``JOB_QUEUED_CHUNKS`` x its priority chunk messages in the queue (the default, 2, here), so
what these tests assert is the order and the counts of the LLM calls the fake recorded, never how long they took.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from shared.adapters.jobs import JobState
from tests.conftest import LS_TOKEN, labeling_config
from tests.integration.processes import BackendProcess, llm_backend_env, wait_for_job

pytestmark = pytest.mark.prose_answers

CHUNK = 20
WORKER_SETTINGS = {"OUTPUT_MODE": "text", "BATCH_CHUNK_SIZE": str(CHUNK), "LLM_CONCURRENCY": "4"}
PRICES = {"LLM_PRICES": json.dumps({"gpt-3.5-turbo": [1000.0, 1000.0]})}  # a call of ~100 tokens costs ~$0.1


@pytest.fixture
def fleet(make_client, make_settings, real_store, redis_prefix, llm_server, fake_llm, fake_label_studio, tmp_path):
    """The API in-process, projects set up with a prompt, and one worker process with the defaults but for a
    small chunk and window (so a few hundred tasks make many chunks)."""
    config = labeling_config("sarcasm")
    fake_llm.reply = lambda messages, index: "Sarcastic"
    workers: list[BackendProcess] = []

    class Fleet:
        def __init__(self) -> None:
            self.api()

        def api(self, **overrides: object) -> None:
            """The API with these settings (over the fixture's) from now on."""
            prices = json.loads(PRICES["LLM_PRICES"])
            settings = make_settings(
                redis_key_prefix=redis_prefix, batch_chunk_size=CHUNK, llm_prices=prices, **overrides
            )
            self.client = make_client(settings, real_store)

        def project(self, number: int, **extra_params: object) -> str:
            """A project with a prompt; returns its id as /predict names it."""
            name = f"{number}.1700000000"
            setup = {"project": name, "schema": config, "hostname": fake_label_studio.url, "access_token": LS_TOKEN}
            response = self.client.post("/setup", json=setup | ({"extra_params": extra_params} if extra_params else {}))
            assert response.status_code == 200, response.json
            event = {
                "action": "ANNOTATION_CREATED",
                "project": {"id": number},
                "annotation": {"result": [{"from_name": "prompt", "value": {"text": ["Sarcastic or not?"]}}]},
            }
            assert self.client.post("/webhook", json=event).status_code == 200
            return name

        def worker(self, children: int = 2) -> BackendProcess:
            env = llm_backend_env(llm_server.url, redis_prefix, **(WORKER_SETTINGS | PRICES))
            process = BackendProcess(
                ["worker", "--concurrency", str(children), "-n", f"fair-{uuid.uuid4().hex[:8]}@%h"],
                env,
                tmp_path / f"worker-{len(workers)}.log",
            )
            workers.append(process.start())
            process.wait_for_log(" ready.")
            return process

        def submit(self, project: str, ids: range) -> str:
            """Retrieve Predictions on tasks ``ids`` of the project; each task's text names its project."""
            number = int(project.split(".")[0])
            tasks = [{"id": i, "data": {"text": f"project {number} task {i}"}} for i in ids]
            fake_label_studio.hold_tasks(number, tasks)
            body = {"tasks": tasks, "project": project, "label_config": config, "params": {"context": None}}
            response = self.client.post("/predict", json=body)
            assert response.status_code == 200 and response.json["results"] == [], response.json
            return response.json["job"]

        def status(self, job_id: str) -> dict:
            return self.client.get(f"/jobs/{job_id}").json

        def wait(self, job_id: str, until=lambda status: JobState(status["state"]).finished, timeout: float = 120):
            return wait_for_job(lambda: self.status(job_id), until, workers, timeout)

    yield Fleet()
    for process in workers:
        process.stop()


def order_of_calls(fake_llm, numbers: tuple[int, ...]) -> list[int]:
    """Which project each LLM call was for, in the order the calls came."""
    asked = sorted(fake_llm.chat_requests, key=lambda request: request.at)
    return [next(n for n in numbers if f"project {n} task " in json.dumps(r.body["messages"])) for r in asked]


def assert_each_once(fake_label_studio, fake_llm, ids: range) -> None:
    by_task = fake_label_studio.predictions_by_task()
    assert {task: len(by_task.get(task, [])) for task in ids} == dict.fromkeys(ids, 1), "each task lands once"
    assert fake_llm.asked_more_than_once() == {}, "no task asked of the LLM twice"


def test_a_small_job_lands_while_a_big_job_of_another_project_runs(fleet, fake_llm, fake_label_studio):
    fake_llm.delay = 0.1  # 2 processes x 4 calls in flight: the big job needs ~12 s alone
    fleet.worker()
    big_project, small_project = fleet.project(41), fleet.project(42)
    big = fleet.submit(big_project, range(1, 1001))
    fleet.wait(big, until=lambda status: status["done"] >= 100)
    calls_before = len(fake_llm.chat_requests)
    small = fleet.submit(small_project, range(5001, 5041))

    small_status = fleet.wait(small)
    big_then = fleet.status(big)
    assert (small_status["state"], small_status["pushed"]) == ("done", 40)
    assert big_then["state"] == "running" and big_then["pushed"] < 1000, "the small job did not wait for the big one"

    order = order_of_calls(fake_llm, (41, 42))
    last_small = max(i for i, project in enumerate(order) if project == 42)
    big_ahead = sum(1 for project in order[calls_before:last_small] if project == 41)
    # Ahead of the small job's last call: what the two windows held (2 x (4 in flight + one chunk of 20 waiting)),
    # the big job's few queued chunks (2 x 20, and their refills while the small job's dispatch waits: 4 chunks in
    # all), and, since the small job's 2 chunks run on the two processes side by side, what the process that ends
    # its small chunk first takes next while the other still drains its own (up to 2 chunks: measured 146 of 168
    # once).  With every chunk of the big job queued at once, its ~850 remaining calls would all come first.
    print(f"big job's calls between the small job's request and its last call: {big_ahead}")
    assert big_ahead <= 2 * (4 + CHUNK) + 4 * CHUNK + 2 * CHUNK

    assert fleet.wait(big)["state"] == "done"
    assert_each_once(fake_label_studio, fake_llm, range(1, 1001))
    assert_each_once(fake_label_studio, fake_llm, range(5001, 5041))


def test_a_slow_import_into_one_project_does_not_hold_back_another_projects_push(fleet, fake_llm, fake_label_studio):
    fake_llm.delay = 0.05
    fake_label_studio.import_fault = "hold"  # the first import call (the big job's) stays open until released
    fleet.worker(children=1)  # one process pushes both projects
    big_project, small_project = fleet.project(47), fleet.project(48)
    big = fleet.submit(big_project, range(1, 201))
    assert fake_label_studio.import_held.wait(60), "the big job's first push did not come"
    try:
        small = fleet.submit(small_project, range(5001, 5041))
        assert fleet.wait(small)["state"] == "done"
        assert fleet.status(big)["pushed"] == 0, "the small job landed while the big job's call was still open"
    finally:
        fake_label_studio.release.set()
    assert fleet.wait(big)["state"] == "done"
    assert_each_once(fake_label_studio, fake_llm, range(1, 201))
    assert_each_once(fake_label_studio, fake_llm, range(5001, 5041))


def test_a_job_of_higher_priority_gets_a_larger_share(fleet, fake_llm, fake_label_studio):
    fake_llm.delay = 0.1
    fleet.worker()
    low_project, high_project = fleet.project(43), fleet.project(44, priority=3)
    low = fleet.submit(low_project, range(1, 401))
    high = fleet.submit(high_project, range(1001, 1401))
    assert (fleet.status(low)["priority"], fleet.status(high)["priority"]) == (1, 3)

    fleet.wait(high)
    order = order_of_calls(fake_llm, (43, 44))
    both = order[order.index(44) : len(order) - order[::-1].index(44)]  # from the high job's first call to its last
    share = both.count(44) / len(both)
    print(f"the priority-3 job's share of the calls while both ran: {share:.2f} of {len(both)}")
    assert share >= 0.6, "priority 3 against 1 takes about three quarters of the calls"
    assert fleet.wait(low)["state"] == "done"
    assert_each_once(fake_label_studio, fake_llm, range(1, 401))
    assert_each_once(fake_label_studio, fake_llm, range(1001, 1401))


def test_a_paused_job_asks_nothing_until_resumed_and_then_asks_each_task_once(fleet, fake_llm, fake_label_studio):
    fake_llm.delay = 0.1
    fleet.worker()
    project = fleet.project(45)
    job = fleet.submit(project, range(1, 301))
    fleet.wait(job, until=lambda status: status["done"] >= 40)

    missing = fleet.client.post(f"/jobs/{job}/pause")
    assert missing.status_code == 400 and "project is required" in missing.json["error"]
    other = fleet.client.post(f"/jobs/{job}/pause", query_string={"project": "99"})
    assert other.status_code == 404, "another project's job cannot be paused"
    paused = fleet.client.post(f"/jobs/{job}/pause", query_string={"project": "45"})
    assert paused.status_code == 200 and paused.json["state"] == "paused", paused.json
    again = fleet.client.post(f"/jobs/{job}/pause", query_string={"project": "45"})
    assert again.status_code == 200 and again.json["state"] == "paused", "pausing a paused job changes nothing"

    time.sleep(1.0)  # the calls in flight when it paused finish (at most the two windows: 8 calls of 0.1 s)
    asked_paused = len(fake_llm.chat_requests)
    time.sleep(2.0)
    assert len(fake_llm.chat_requests) == asked_paused, "a paused job asks the LLM nothing"
    assert asked_paused < 300 and fleet.status(job)["state"] == "paused"

    resumed = fleet.client.post(f"/jobs/{job}/resume", query_string={"project": "45"})
    assert resumed.status_code == 200 and resumed.json["state"] == "running", resumed.json
    status = fleet.wait(job)
    assert (status["state"], status["done"], status["pushed"]) == ("done", 300, 300)
    assert len(fake_llm.chat_requests) == 300
    assert_each_once(fake_label_studio, fake_llm, range(1, 301))
    finished = fleet.client.post(f"/jobs/{job}/pause", query_string={"project": "45"})
    assert finished.status_code == 400 and "only a queued or running job" in finished.json["error"]


def test_a_job_pauses_at_its_budget_and_resumes_with_a_higher_one(fleet, fake_llm, fake_label_studio):
    fake_llm.delay = 0.05
    fleet.api(batch_max_usd=2.0)  # BATCH_MAX_USD
    fleet.worker()
    project = fleet.project(46)
    job = fleet.submit(project, range(1, 201))
    status = fleet.wait(job, until=lambda status: status["state"] == "paused")
    assert status["max_usd"] == 2.0 and "budget reached" in status["message"], status
    time.sleep(1.0)  # calls in flight when it paused finish
    status = fleet.status(job)
    calls = len(fake_llm.chat_requests)
    average = status["cost_usd"] / calls
    print(f"paused at ${status['cost_usd']:.3f} of $2 after {calls} calls (${average:.3f} each)")
    assert calls < 200
    assert status["cost_usd"] <= 2.0 + 2 * 4 * average, "over by at most the calls in flight (2 windows of 4)"
    time.sleep(1.0)
    assert len(fake_llm.chat_requests) == calls, "nothing asked while paused at the budget"

    refused = fleet.client.post(f"/jobs/{job}/resume", query_string={"project": "46"})
    assert refused.status_code == 400 and "higher" in refused.json["error"]
    bad = fleet.client.post(f"/jobs/{job}/resume", query_string={"project": "46", "max_usd": "lots"})
    assert bad.status_code == 400 and "max_usd must be a number" in bad.json["error"]
    resumed = fleet.client.post(f"/jobs/{job}/resume", query_string={"project": "46", "max_usd": "1000"})
    assert resumed.status_code == 200 and resumed.json["max_usd"] == 1000.0 and resumed.json["message"] is None
    assert fleet.wait(job)["state"] == "done"
    assert len(fake_llm.chat_requests) == 200
    assert_each_once(fake_label_studio, fake_llm, range(1, 201))
