"""Fixtures for the end-to-end suite: a real Label Studio, our API and worker processes, the fake LLM."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis
from label_studio_sdk import LabelStudio

from tests.conftest import real_redis_url
from tests.e2e.label_studio_server import TOKEN, LabelStudioServer, ensure_installed, fresh_data_dir
from tests.integration.processes import BackendProcess, free_port, llm_backend_env

BASIC_AUTH = ("ls-backend", "backend-pass-9")


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def label_studio(e2e_dir):
    python = ensure_installed()
    port = free_port()
    data_dir = fresh_data_dir(python, e2e_dir / "label-studio-data", free_port(), e2e_dir / "migrate.log")
    server = LabelStudioServer(python, data_dir, port, e2e_dir / "label-studio.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ls(label_studio) -> LabelStudio:
    return LabelStudio(base_url=label_studio.url, api_key=TOKEN)


@pytest.fixture(scope="session")
def backend(label_studio, llm_server, e2e_dir):
    """Our API (plain and with basic auth) and a worker, all on one Redis prefix of their own."""
    prefix = f"llm-backend-e2e-{uuid.uuid4().hex[:8]}"
    env = llm_backend_env(
        llm_server.url,
        prefix,
        BATCH_CHUNK_SIZE="50",
        LLM_CONCURRENCY="8",
        CACHE_TTL="0",
        AUTO_PREDICT_ON_IMPORT="1",
    )
    plain_port, guarded_port = free_port(), free_port()
    processes = [
        BackendProcess(["api", "--host", "127.0.0.1", "--port", str(plain_port)], env, e2e_dir / "api.log"),
        BackendProcess(
            ["api", "--host", "127.0.0.1", "--port", str(guarded_port)],
            env | {"BASIC_AUTH_USER": BASIC_AUTH[0], "BASIC_AUTH_PASS": BASIC_AUTH[1]},
            e2e_dir / "api-auth.log",
        ),
        BackendProcess(
            ["worker", "--concurrency", "2", "-n", f"e2e-{uuid.uuid4().hex[:6]}@%h"], env, e2e_dir / "worker.log"
        ),
    ]
    try:
        for process in processes:
            process.start()
        processes[0].wait_for_log("Booting worker")
        processes[1].wait_for_log("Booting worker")
        processes[2].wait_for_log(" ready.")
        yield {
            "url": f"http://127.0.0.1:{plain_port}",
            "auth_url": f"http://127.0.0.1:{guarded_port}",
            "worker": processes[2],
            "env": env,
        }
    finally:
        for process in processes:
            process.stop()
        client = redis.Redis.from_url(real_redis_url())
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
