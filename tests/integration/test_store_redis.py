"""The store and cache on the real Redis, as several processes share them."""

import threading
import time

import pytest

from shared.adapters.ledger import Ledger
from shared.adapters.llm import LLM, cache_key
from shared.adapters.store import ProjectSetup, Store
from shared.domain.config import Settings
from shared.domain.estimation.pricing import TokenUsage
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


def test_writes_in_one_round_trip_land_together_at_the_end_and_not_at_all_after_an_error(real_store):
    usage = TokenUsage(10, 2, 0)
    with real_store.one_round_trip() as writes:
        real_store.cache_answer("k1", {"texts": ["x"]}, 60, writes)
        with real_store.one_round_trip(writes) as joined:  # a method given the caller's pipeline queues on it
            assert joined is writes
            real_store.add_usage("7", "m", usage, writes=joined)
        assert real_store.cached_answer("k1") is None and real_store.calls("7") == {}  # not sent yet
    assert real_store.cached_answer("k1") == {"texts": ["x"]}
    assert real_store.calls("7") == {"m": 1} and real_store.usage("7") == {"m": {"in": 10, "out": 2, "cached": 0}}

    with pytest.raises(RuntimeError), real_store.one_round_trip() as writes:
        real_store.add_usage("7", "m", usage, writes=writes)
        raise RuntimeError("the LLM call failed after all")
    assert real_store.calls("7") == {"m": 1}


def test_claims_and_chunk_holders_are_released_and_extended_only_by_their_owner(real_store):
    """Each release, extension and hand-back compares the holder in the same Lua step as it acts, so a claim that
    lapsed and was taken over is never touched by its former owner."""
    from shared.adapters.jobs import Jobs

    jobs = Jobs(real_store, ttl=3600)
    ledger = jobs.ledger("9", "v1")
    claims = ledger.claim([1, 2], "worker-a", 300)
    assert (claims.held, claims.busy) == ([1, 2], [])
    real_store.redis.expire(real_store.key("ledger", "9", "v1", "claim", "1"), 30)  # time passes
    real_store.redis.set(real_store.key("ledger", "9", "v1", "claim", "2"), "worker-b", ex=5)  # a take-over

    claims.renew()
    ttls = [real_store.redis.ttl(real_store.key("ledger", "9", "v1", "claim", str(t))) for t in (1, 2)]
    assert ttls[0] > 30 and ttls[1] <= 5, ttls
    claims.release()
    claims = ledger.claim([1, 2], "worker-c", 30)
    assert (claims.held, claims.busy) == ([1], [2]), "worker-b keeps task 2"

    jobs.hold_chunk("job1", 0, "node-b")  # taken again by node-b since node-a was found gone
    assert jobs.release_orphan("job1", 0, "node-a", 30) is True
    assert real_store.redis.hget(real_store.key("job", "job1", "holders"), "0") == "node-b"


def test_a_chunk_sees_each_of_its_tasks_somewhere_while_the_pusher_moves_them(real_store):
    """The pusher moves tasks from the outbox to on their way to pushed while their chunk looks (``whereabouts``):
    each look sees every task in one of those places.  Read in several round trips, a task that landed between the
    read of ``pushed`` and that of the marks was seen nowhere, and its chunk gave up on a task landing (CI: the
    window test's chunk ran again)."""
    ledger = Ledger(real_store, "7", "v1", ttl=600)  # the default handover grace
    tasks = [str(task_id) for task_id in range(300)]
    for task_id in tasks:
        ledger.keep_answer(task_id, {"result": []}, digest="d")

    def pusher() -> None:
        while batch := ledger.take_batch(3):
            ledger.record_push("pusher", batch, reconcile_at=time.time() + 60, answer_by=time.time() + 60)
            ledger.settle_push(landed=list(batch), not_landed=[])

    moving = threading.Thread(target=pusher)
    moving.start()
    looks = []
    while moving.is_alive() or not looks:
        seen = ledger.whereabouts(tasks)
        looks.append(len(seen.pushed))
        assert sorted([*seen.pushed, *seen.coming], key=int) == tasks and not seen.refused
    moving.join()
    assert ledger.whereabouts(tasks).pushed == tasks
    assert len(set(looks)) > 10, "the looks saw the tasks move"  # else the test proved nothing
