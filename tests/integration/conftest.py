"""Fixtures of the integration tests that only some modules use."""

import pytest

from tests.integration.own_redis import OwnRedis


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of the test's own (password, AOF), for tests that restart it."""
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()
