"""Fixtures of the integration tests that only some modules use."""

import fcntl
import tempfile
from pathlib import Path

import pytest

from shared.domain.config import setting_default
from shared.domain.endpoints import host_port
from tests.fakes.recorder import RecordingServer, chat_completion, send
from tests.integration.own_redis import OwnRedis


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of the test's own (password, AOF), for tests that restart it."""
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def default_ollama_port():
    """A recording listener where OLLAMA_ENDPOINT's default points (localhost:11434): on an operator's machine,
    whatever process happens to listen there."""
    where = host_port(setting_default("ollama_endpoint"))
    assert where is not None and where[0] == "localhost"
    # ``make test`` runs several pytest processes: tests of different files wanting this one port take turns.
    with (Path(tempfile.gettempdir()) / "llm-backend-tests-ollama-port.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            server = RecordingServer(
                lambda request, handler: send(handler, 200, chat_completion("Sarcastic")), where[1]
            )
        except OSError as exc:
            pytest.fail(f"cannot listen on Ollama's default port {where[1]} to record what reaches it: {exc}")
        with server:
            yield server
