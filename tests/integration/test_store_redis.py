"""The store and cache on the real Redis, as several processes share them."""

from shared.adapters.llm import LLM, cache_key
from shared.adapters.store import ProjectSetup, Store
from shared.domain.config import Settings
from tests.conftest import real_redis_url


def test_project_state_round_trips_through_redis(real_store):
    setup = ProjectSetup(
        label_config="<View/>", hostname="http://ls", access_token="tok-secret-1", extra_params={"model": "m"}
    )
    real_store.save_setup("42", setup)
    assert real_store.load_setup("42") == setup
    assert real_store.load_setup("43") is None
    assert real_store.save_prompt("42", "first") is True
    assert real_store.save_prompt("42", "first") is False
    assert real_store.save_prompt("42", "second") is True
    assert real_store.prompt("42") == "second"
    real_store.record_version("42", "v-a")
    real_store.record_version("42", "v-b")
    real_store.record_version("42", "v-a")
    assert real_store.versions("42") == ["v-a", "v-b"]
    assert "tok-secret-1" not in repr(setup)


def test_every_key_carries_the_prefix(real_store, redis_prefix):
    real_store.save_setup("1", ProjectSetup(label_config="<View/>"))
    real_store.save_prompt("1", "p")
    real_store.record_version("1", "v")
    real_store.cache_answer("abc", {"texts": ["x"]}, ttl=60)
    keys = sorted(real_store.redis.scan_iter(f"{redis_prefix}:*"))
    assert keys == [
        f"{redis_prefix}:cache:abc",
        f"{redis_prefix}:project:1:prompt",
        f"{redis_prefix}:project:1:setup",
        f"{redis_prefix}:project:1:versions",
    ]
    assert 0 < real_store.redis.ttl(f"{redis_prefix}:cache:abc") <= 60


def test_llm_cache_is_shared_between_processes(real_store, redis_prefix, fake_llm, make_settings):
    settings: Settings = make_settings()
    messages = [{"role": "user", "content": "shared?"}]
    first = LLM(real_store, 60).complete(settings.defaults.llm, messages)
    other_process_store = Store.from_url(real_redis_url(), redis_prefix)
    again = LLM(other_process_store, 60).complete(settings.defaults.llm, messages)
    assert again.cached and again.texts == first.texts
    assert len(fake_llm.chat_requests) == 1
    assert real_store.cached_answer(cache_key(settings.defaults.llm, messages))["texts"] == first.texts
