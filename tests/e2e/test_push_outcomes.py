"""A push that outlives its read timeout against a real Label Studio still lands exactly once (issue #24).

Label Studio finishes an import whose client gave up: the worker here waits 0.05 s for each answer, so every
call's outcome is unknown to it, and it reads back which tasks hold the prediction instead of sending again.
"""

from __future__ import annotations

import collections
import uuid

import httpx
import pytest
import redis

from shared.adapters.label_studio import LabelStudioAccess, LabelStudioGateway
from shared.adapters.netguard import AddressPolicy
from tests.conftest import real_redis_url
from tests.e2e.conftest import BASIC_AUTH
from tests.e2e.label_studio_server import TOKEN
from tests.e2e.test_label_studio import calls_for, connect, new_project, retrieve_predictions, task_ids
from tests.e2e.test_label_studio import wait_for_predictions as wait_for
from tests.integration.processes import BackendProcess, free_port, llm_backend_env

pytestmark = pytest.mark.timeout(900)

TASKS = 150


@pytest.fixture(scope="module")
def impatient_backend(label_studio, llm_server, e2e_dir):
    """Our API and a worker whose pushes time out after 0.05 s, on a Redis prefix of their own."""
    prefix = f"llm-backend-e2e-{uuid.uuid4().hex[:8]}"
    env = llm_backend_env(
        llm_server.url,
        prefix,
        BATCH_CHUNK_SIZE="50",
        LLM_CONCURRENCY="8",
        CACHE_TTL="0",
        OUTPUT_MODE="text",
        LOG_LEVEL="INFO",
        PUSH_TIMEOUT_MIN="0.05",
        PUSH_TIMEOUT_MAX="0.05",
    )
    port = free_port()
    api = BackendProcess(
        ["api", "--host", "127.0.0.1", "--port", str(port)],
        env | {"BASIC_AUTH_USER": BASIC_AUTH[0], "BASIC_AUTH_PASS": BASIC_AUTH[1]},
        e2e_dir / "impatient-api.log",
    )
    worker = BackendProcess(
        ["worker", "--concurrency", "2", "-n", f"e2e-impatient-{uuid.uuid4().hex[:6]}@%h"],
        env,
        e2e_dir / "impatient-worker.log",
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
