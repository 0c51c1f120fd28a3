"""A push that outlives its read timeout against a real Label Studio still lands exactly once (issue #24).

Label Studio finishes an import whose client gave up: the worker here waits 0.05 s for each answer, so every
call's outcome is unknown to it, and it reads back which tasks hold the prediction instead of sending again.
"""

from __future__ import annotations

import collections
import re
import time
import uuid

import httpx
import pytest
import redis

from shared.adapters.label_studio import LabelStudioAccess, LabelStudioGateway
from shared.adapters.netguard import AddressPolicy
from tests.conftest import real_redis_url
from tests.e2e.conftest import BASIC_AUTH
from tests.e2e.label_studio_server import TOKEN
from tests.e2e.test_label_studio import (
    calls_for,
    connect,
    jobs_of,
    new_project,
    retrieve_predictions,
    task_data,
    task_ids,
)
from tests.e2e.test_label_studio import wait_for_predictions as wait_for
from tests.integration.processes import BackendProcess, free_port, llm_backend_env

pytestmark = pytest.mark.timeout(900)

TASKS = 150


def backend_with(label_studio, llm_server, e2e_dir, name: str, **env: str):
    """Our API and a worker with ``env`` over the defaults, on a Redis prefix of their own (a fixture's body)."""
    prefix = f"llm-backend-e2e-{uuid.uuid4().hex[:8]}"
    env = llm_backend_env(llm_server.url, prefix, OUTPUT_MODE="text", LOG_LEVEL="INFO", **env)
    port = free_port()
    api = BackendProcess(
        ["api", "--host", "127.0.0.1", "--port", str(port)],
        env | {"BASIC_AUTH_USER": BASIC_AUTH[0], "BASIC_AUTH_PASS": BASIC_AUTH[1]},
        e2e_dir / f"{name}-api.log",
    )
    worker = BackendProcess(
        ["worker", "--concurrency", "2", "-n", f"e2e-{name}-{uuid.uuid4().hex[:6]}@%h"],
        env,
        e2e_dir / f"{name}-worker.log",
    )
    try:
        api.start().wait_for_log("Booting worker")
        worker.start().wait_for_log(" ready.")
        yield {"url": f"http://127.0.0.1:{port}", "auth": BASIC_AUTH, "worker": worker}
    finally:
        worker.stop()
        api.stop()
        client = redis.Redis.from_url(real_redis_url())
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="module")
def impatient_backend(label_studio, llm_server, e2e_dir):
    """Pushes time out after 0.05 s."""
    yield from backend_with(
        label_studio,
        llm_server,
        e2e_dir,
        "impatient",
        BATCH_CHUNK_SIZE="50",
        LLM_CONCURRENCY="8",
        CACHE_TTL="0",
        PUSH_TIMEOUT_MIN="0.05",
        PUSH_TIMEOUT_MAX="0.05",
    )


def test_a_push_that_outlives_its_read_timeout_lands_once(ls, impatient_backend, fake_llm):
    fake_llm.reply = lambda messages, index: "Sarcastic"
    project, marker = new_project(ls, "sarcasm", TASKS)
    extra = {"default_prompt": "Is this sarcastic? {text} Labels: {labels}", "use_internal_prompt_template": False}
    version = connect(ls, project, impatient_backend, extra_params=extra).model_version

    retrieve_predictions(ls, project)

    found = wait_for(ls, project, TASKS, impatient_backend)
    per_task = collections.Counter(prediction["task"] for prediction in found)
    assert sorted(per_task) == task_ids(ls, project) and set(per_task.values()) == {1}, "one prediction per task"
    assert {prediction["model_version"] for prediction in found} == {version}
    assert len(calls_for(fake_llm, marker)) == TASKS, "one LLM call per task"
    log = impatient_backend["worker"].log
    assert "outcome unknown" in log and "ReadTimeout" in log, "the pushes did outlive their read timeout"
    assert "read back the push" in log


def test_the_read_back_tells_the_tasks_holding_the_version_from_the_others(ls, label_studio):
    """What a push's read-back relies on, asked of the real Label Studio: tasks with a prediction of the version
    count, tasks with none or with another version's only do not."""
    project, _ = new_project(ls, "sarcasm", 12)
    ids = task_ids(ls, project)
    region = {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Sarcastic"]}}

    def push(tasks: list[int], version: str) -> None:
        body = [{"task": task, "result": [region], "score": 0.5, "model_version": version} for task in tasks]
        httpx.post(
            f"{label_studio.url}/api/projects/{project.id}/import/predictions",
            json=body,
            headers={"Authorization": f"Token {TOKEN}"},
            timeout=60,
        ).raise_for_status()

    push(ids[:4], "gpt-4o-0123456789")
    push(ids[4:6], "gpt-4o-abcdefabcd")  # another version
    push(ids[6:8], "gpt-4o-0123456789")
    push(ids[6:8], "gpt-4o-abcdefabcd")  # both
    gateway = LabelStudioGateway(
        LabelStudioAccess(label_studio.url, TOKEN), policy=AddressPolicy(private_hosts=frozenset({"127.0.0.1"}))
    )
    assert gateway.predicted_among(project.id, ids, "gpt-4o-0123456789") == set(ids[:4]) | set(ids[6:8])
    assert gateway.predicted_among(project.id, ids, "gpt-4o-abcdefabcd") == set(ids[4:8])
    assert gateway.predicted_among(project.id, ids, "gpt-4o-fedcbafedc") == set()


SEEDED = 10_000  # tasks holding a prediction before the job: what Label Studio recounts on every import
JOB_TASKS = 2_000
FLOOR = 1.0  # PUSH_TIMEOUT_MIN, scaled down from its default of 60 s (see the test's docstring)
# PUSH_MAX_PREDICTIONS, a tenth of its default: a long job makes many calls, each read timeout learning from the
# last; with the default this job made two (368 predictions, then 1,632), both cut off (CI, 2026-12-08: the second's
# 18.8 s came from the first's 1.1 s, a floor well below what that call cost).  500 makes it several; the default
# scaled with the job (100) would make twenty, of seconds each.
MAX_CALL = 500
LANDED_CALL = re.compile(r"pushed (\d+) predictions to project \d+ in ([\d.]+) s \(read timeout ([\d.]+) s")


@pytest.fixture(scope="module")
def scaled_backend(label_studio, llm_server, e2e_dir):
    """The defaults but for the read timeout's floor, scaled down 60 times, and the largest call, with the job."""
    yield from backend_with(
        label_studio,
        llm_server,
        e2e_dir,
        "scaled",
        PUSH_TIMEOUT_MIN=str(FLOOR),
        PUSH_MAX_PREDICTIONS=str(MAX_CALL),
    )


def seed(ls, project, count: int) -> None:
    """``count`` tasks imported with a prediction each (of another version): the project as a long job leaves it."""
    region = {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Sarcastic"]}}
    tasks = [
        {"data": task_data("sarcasm", "seeded", i), "predictions": [{"model_version": "seed", "result": [region]}]}
        for i in range(count)
    ]
    ls.projects.import_tasks(id=project.id, request=tasks)


def test_calls_that_outgrow_the_read_timeout_floor_land_with_label_studios_answer(ls, scaled_backend, fake_llm):
    """Without its flag, Label Studio recounts every task of the project on each import: a call to a project of
    50,000 tasks holding predictions outlives the 60 s floor of ``PUSH_TIMEOUT_MIN`` (87 s at 70,000 in the
    100,000-task benchmark).  Seeding that many and making two such calls (the first, with no cost known yet,
    times out at the floor and is read back; the next waits four times what it cost) takes about five minutes on
    this machine, so this test scales time down 60 times and the job 50 times (its largest call 10 times) and keeps
    every other default: the floor is 1 s and the project holds 10,000 tasks with a prediction, which makes each
    call cost a few seconds (on a machine loaded by other work it cost more: a run on 2026-12-07 seeded in 48 s,
    read back two calls and landed one of 400 predictions after 72 s with a read timeout of 75 s).  What it shows
    is what holds at full scale: calls that take longer than the floor end with Label Studio's answer, because each
    call's read timeout comes from what the last calls cost (the first calls, before any cost is known, may time
    out at the floor and are read back: one that timed out counts as that long); no call is sent again blindly;
    every task of the job gets one prediction from one LLM call, and the job's ``pushed`` is all of them."""
    fake_llm.reply = lambda messages, index: "Sarcastic"
    fake_llm.delay = 0.5  # as in the benchmark: predictions come over several seconds, the pusher makes several calls
    project, marker = new_project(ls, "sarcasm", 0)
    started = time.monotonic()
    seed(ls, project, SEEDED)
    print(f"{SEEDED} tasks with a prediction imported in {time.monotonic() - started:.1f} s")
    imported = ls.projects.import_tasks(
        id=project.id, request=[task_data("sarcasm", marker, i) for i in range(JOB_TASKS)], return_task_ids=True
    )
    job_tasks = sorted(imported.task_ids)
    assert len(job_tasks) == JOB_TASKS
    extra = {"default_prompt": "Is this sarcastic? {text} Labels: {labels}", "use_internal_prompt_template": False}
    version = connect(ls, project, scaled_backend, extra_params=extra).model_version

    ls.actions.create(
        id="retrieve_tasks_predictions", project=project.id, selected_items={"all": False, "included": job_tasks}
    )
    deadline = time.monotonic() + 600
    while not (jobs := jobs_of(scaled_backend, project)) or any(job["state"] in ("queued", "running") for job in jobs):
        assert time.monotonic() < deadline, f"the job did not finish: {jobs}"
        time.sleep(1)

    [job] = jobs
    assert (job["state"], job["pushed"], job["failed"]) == ("done", JOB_TASKS, 0)
    ours = [p.dict() for p in ls.predictions.list(project=project.id) if p.model_version == version]
    per_task = collections.Counter(prediction["task"] for prediction in ours)
    assert sorted(per_task) == job_tasks and set(per_task.values()) == {1}, "one prediction per task of the job"
    assert len(calls_for(fake_llm, marker)) == JOB_TASKS, "one LLM call per task"
    log = scaled_backend["worker"].log
    landed = [(int(size), float(seconds), float(timeout)) for size, seconds, timeout in LANDED_CALL.findall(log)]
    print(f"calls that landed (size, seconds, read timeout): {landed}; {log.count('outcome unknown')} unknown")
    assert any(seconds > FLOOR for _, seconds, _ in landed), f"a call outlived the floor and landed: {landed}"
    assert log.count("outcome unknown") == log.count("read back the push"), "each unknown outcome read back"
