"""The shared rate limit: a token bucket in the real Redis (its Lua script uses Redis's clock)."""

from __future__ import annotations

import threading
import time

import pytest

from shared.adapters.llm import LLM
from shared.adapters.ratelimit import RateLimiter
from shared.domain.errors import LLMError

MESSAGES = [{"role": "user", "content": "hi"}]


def test_batch_leaves_the_interactive_reserve(real_store, settings):
    limiter = RateLimiter(real_store, rpm=60, tpm=0, interactive_share=0.5, max_wait=5)
    bucket = limiter._bucket(settings.defaults.llm, "rpm", 60)  # 1 per second, capacity 2, reserve 1

    def take(floor: float) -> float:
        args = [bucket.rate, bucket.capacity, 1, floor, bucket.capacity * limiter.interactive_share]
        return float(limiter._take(keys=[bucket.key], args=args))

    assert take(1.0) > 0, "a new bucket holds only the reserve: batch waits"
    assert take(0.0) == 0, "an interactive request takes the reserve at once"
    assert take(0.0) > 0
    real_store.redis.hset(bucket.key, mapping={"level": 2})
    assert take(1.0) == 0, "batch takes what is above the reserve"
    assert take(1.0) > 0, "batch must leave the reserve"
    assert take(0.0) == 0


def test_calls_from_many_threads_never_outrun_the_bucket(real_store, settings):
    rpm = 1200  # 20 per second; a new bucket starts empty (no reserve here)
    limiter = RateLimiter(real_store, rpm=rpm, tpm=0, interactive_share=0.0, max_wait=30)
    taken: list[float] = []
    lock = threading.Lock()

    def call(count: int) -> None:
        for _ in range(count):
            limiter.acquire(settings.defaults.llm, MESSAGES, interactive=False)
            with lock:
                taken.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=call, args=(10,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    taken.sort()
    assert len(taken) == 80
    rate = rpm / 60
    for index, moment in enumerate(taken):
        allowed = rate * (moment - started) + 1
        assert index + 1 <= allowed, f"call {index + 1} at {moment - started:.2f} s exceeds the rate"
    assert taken[-1] - started >= 80 / rate * 0.9


def test_tokens_per_minute_are_estimated_then_settled(real_store, settings):
    limiter = RateLimiter(real_store, rpm=0, tpm=6000, interactive_share=0.0, max_wait=5)
    options = settings.defaults.llm
    assert limiter.estimate_tokens(options, MESSAGES) == len('[{"role": "user", "content": "hi"}]') // 4 + 256
    bucket = limiter._bucket(options, "tpm", 6000)
    real_store.redis.hset(bucket.key, mapping={"level": 50, "at": 0})
    limiter.settle(options, estimated=100, actual=18)
    assert float(real_store.redis.hget(bucket.key, "level")) == 132, "the over-charge comes back"


def test_retries_go_through_the_bucket_and_honour_retry_after(real_store, make_settings, fake_llm):
    settings = make_settings(llm_rpm=600, llm_max_retries=2)
    llm = LLM.from_settings(settings, real_store)
    fake_llm.fail_next(429, times=2, headers={"Retry-After": "0.3"})
    started = time.monotonic()
    assert llm.complete(settings.defaults.llm, MESSAGES).texts == ["ANSWER to: hi"]
    first, second, third = fake_llm.chat_requests
    assert second.at - first.at >= 0.3 and third.at - second.at >= 0.3
    assert time.monotonic() - started >= 0.6
    fake_llm.fail_next(429, times=3, headers={"Retry-After": "0.1"})
    with pytest.raises(LLMError, match="answered 429"):
        llm.complete(settings.defaults.llm, [{"role": "user", "content": "again"}])
    assert len(fake_llm.chat_requests) == 6, "max_retries is kept: 1 call + 2 retries"


def test_waiting_longer_than_allowed_is_a_retryable_error(real_store, settings):
    limiter = RateLimiter(real_store, rpm=6, tpm=0, interactive_share=0.0, max_wait=0.5)  # one call per 10 s
    with pytest.raises(LLMError, match="rate limit: waited 0.5 s") as caught:
        limiter.acquire(settings.defaults.llm, MESSAGES, interactive=False)
    assert caught.value.retryable


def test_no_limits_means_no_limiter(real_store, settings, fake_llm):
    assert not RateLimiter(real_store, 0, 0, 0.2, 60).enabled
    LLM(real_store, 0, RateLimiter(real_store, 0, 0, 0.2, 60)).complete(settings.defaults.llm, MESSAGES)
    assert list(real_store.redis.scan_iter(f"{real_store.prefix}:ratelimit:*")) == []
