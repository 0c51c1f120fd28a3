"""``llm-backend up`` (embedded Redis, API, worker, Flower), ``flower`` and ``health``, as a user runs them."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid

import httpx
import psutil
import pytest

from shared.adapters.jobs import JobState
from tests.conftest import TEST_API_KEY, labeling_config
from tests.fakes.label_studio import FakeLabelStudio
from tests.integration.processes import (
    LLM_BACKEND,
    BackendProcess,
    backend_env,
    free_port,
    llm_backend_env,
    prepare_project_over_http,
)

FLOWER_AUTH = ("admin", "flower-pw")
LS_TOKEN = "ls-token-stack"


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.3)


@pytest.fixture
def stack_up(tmp_path, llm_server, fake_llm):
    api_port, flower_port = free_port(), free_port()
    env = llm_backend_env(
        llm_server.url,
        f"stack-{uuid.uuid4().hex[:8]}",
        REDIS_URL="redis://127.0.0.1:1/0",  # nothing answers there: `up` must bring its own Redis
        FLOWER_BASIC_AUTH=":".join(FLOWER_AUTH),
        BATCH_CHUNK_SIZE="10",
        OUTPUT_MODE="text",  # the fake model answers in prose, as the reference's did
    )
    args = ["up", "--port", str(api_port), "--flower-port", str(flower_port), "--data-dir", str(tmp_path / "data")]
    up = BackendProcess(args, env, tmp_path / "up.log").start()
    up.wait_for_log("Ctrl-C stops everything.", timeout=60)
    yield up, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{flower_port}"
    up.stop(timeout=60)


def test_up_runs_the_whole_stack_without_a_configured_redis(stack_up, fake_llm, tmp_path):
    up, api, flower = stack_up
    assert "(embedded, data in" in up.log
    assert wait_until(lambda: httpx.get(f"{api}/health").status_code == 200, 30, "the API")

    assert httpx.get(f"{flower}/api/workers", timeout=5).status_code == 401
    workers = wait_until(
        lambda: httpx.get(f"{flower}/api/workers?refresh=1", auth=FLOWER_AUTH, timeout=10).json(), 60, "a worker"
    )
    assert any(name.startswith("worker1@") for name in workers)

    fake_llm.reply = lambda messages, index: "Sarcastic"
    with FakeLabelStudio(token=LS_TOKEN) as label_studio:
        config = labeling_config("sarcasm")
        prepare_project_over_http(api, 41, label_studio.url, LS_TOKEN, config)
        tasks = [{"id": i, "data": {"text": f"t{i}"}} for i in range(30)]
        label_studio.hold_tasks(41, tasks)
        job = httpx.post(
            f"{api}/predict", json={"tasks": tasks, "project": "41.1", "label_config": config}, timeout=10
        ).json()["job"]
        status = wait_until(
            lambda: JobState((s := httpx.get(f"{api}/jobs/{job}", timeout=5).json())["state"]).finished and s,
            60,
            "the batch",
        )
        assert (status["state"], status["pushed"]) == ("done", 30)
        assert sorted(label_studio.predictions_by_task()) == list(range(30))

    # Flower names the tasks and their job ids, and shows no secret.
    tasks_seen = wait_until(
        lambda: httpx.get(f"{flower}/api/tasks?limit=100", auth=FLOWER_AUTH, timeout=10).json(), 30, "tasks"
    )
    names = {task["name"] for task in tasks_seen.values()}
    assert {"llm_backend.dispatch_job", "llm_backend.predict_chunk"} <= names
    assert any(job in str(task["args"]) for task in tasks_seen.values())
    flower_text = httpx.get(f"{flower}/api/tasks?limit=100", auth=FLOWER_AUTH, timeout=10).text
    flower_text += httpx.get(f"{flower}/api/workers", auth=FLOWER_AUTH, timeout=10).text
    for secret in (TEST_API_KEY, LS_TOKEN):
        assert secret not in flower_text and secret not in up.log

    family = psutil.Process(up.process.pid).children(recursive=True)
    assert len(family) >= 4  # redis, api, worker, flower (and their own children)
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=60) == 0
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], f"left behind: {alive}"


def test_flower_refuses_to_start_without_credentials():
    result = subprocess.run(
        [LLM_BACKEND, "flower", "--port", str(free_port())],
        env=backend_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH=user:password is required" in result.stderr


def test_health_command_uses_basic_auth(tmp_path, redis_prefix):
    port = free_port()
    env = backend_env(BASIC_AUTH_USER="u", BASIC_AUTH_PASS="p", REDIS_KEY_PREFIX=redis_prefix)
    api = BackendProcess(
        ["api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env, tmp_path / "api.log"
    ).start()
    try:
        api.wait_for_log("Booting worker")
        url = f"http://127.0.0.1:{port}/health"

        def health(environment):
            return subprocess.run(
                [LLM_BACKEND, "health", "--url", url], env=environment, capture_output=True, text=True
            )

        healthy = wait_until(lambda: (result := health(env)).returncode == 0 and result, 30, "healthy")
        assert healthy.stdout.strip() == "healthy"
        without_auth = subprocess.run(
            [LLM_BACKEND, "health", "--url", url], env=backend_env(), capture_output=True, text=True
        )
        assert without_auth.returncode == 1 and "unhealthy: 401" in without_auth.stdout
        nowhere = subprocess.run(
            [LLM_BACKEND, "health", "--url", f"http://127.0.0.1:{free_port()}/health"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert nowhere.returncode == 1 and "ConnectError" in nowhere.stderr
    finally:
        api.stop()
