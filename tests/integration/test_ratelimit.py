"""The shared rate limit: a token bucket in the real Redis (its Lua script uses Redis's clock)."""

from __future__ import annotations

import threading
import time

import pytest

from shared.errors import LLMError
from shared.llm import LLM
from shared.ratelimit import RateLimiter

MESSAGES = [{"role": "user", "content": "hi"}]


def test_batch_leaves_the_interactive_reserve(real_store, settings):
    limiter = RateLimiter(real_store, rpm=60, tpm=0, interactive_share=0.5, max_wait=5)
    bucket = limiter._bucket(settings.defaults.llm, "rpm", 60)  # 1 per second, capacity 2, reserve 1

    def take(floor: float) -> float:
        return float(limiter._take(keys=[bucket.key], args=[bucket.rate, bucket.capacity, 1, floor]))

    assert take(1.0) == 0, "batch takes the first token"
    assert take(1.0) > 0, "batch must leave the reserve"
    assert take(0.0) == 0, "an interactive request takes the reserve at once"
    assert take(0.0) > 0


def test_calls_from_many_threads_never_outrun_the_bucket(real_store, settings):
    rpm = 1200  # 20 per second, bucket of 40
    limiter = RateLimiter(real_store, rpm=rpm, tpm=0, interactive_share=0.0, max_wait=30)
    taken: list[float] = []
    lock = threading.Lock()

    def call(count: int) -> None:
        for _ in range(count):
            limiter.acquire(settings.defaults.llm, MESSAGES, interactive=False)
            with lock:
                taken.append(time.monotonic())

    threads = [threading.Thread(target=call, args=(10,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    taken.sort()
    assert len(taken) == 80
    bucket = limiter._bucket(settings.defaults.llm, "rpm", rpm)
    for index, moment in enumerate(taken):
        allowed = bucket.capacity + bucket.rate * (moment - taken[0]) + 1
        assert index + 1 <= allowed, f"call {index + 1} at {moment - taken[0]:.2f} s exceeds the bucket"
    assert taken[-1] - taken[0] >= (80 - bucket.capacity) / bucket.rate * 0.9


def test_tokens_per_minute_are_estimated_then_settled(real_store, settings, fake_llm):
    limiter = RateLimiter(real_store, rpm=0, tpm=6000, interactive_share=0.0, max_wait=5)
    llm = LLM(real_store, 0, limiter)
    options = settings.defaults.llm
    estimate = limiter.estimate_tokens(options, MESSAGES)
    assert estimate == len('[{"role": "user", "content": "hi"}]') // 4 + 256
    llm.complete(options, MESSAGES)
    bucket = limiter._bucket(options, "tpm", 6000)
    level = float(real_store.redis.hget(bucket.key, "level"))
    # the fake reports 18 tokens used: the bucket got back what the estimate over-charged
    assert level == pytest.approx(bucket.capacity - 18, abs=bucket.rate * 2)


def test_waiting_longer_than_allowed_is_a_retryable_error(real_store, settings):
    limiter = RateLimiter(real_store, rpm=6, tpm=0, interactive_share=0.0, max_wait=0.5)  # capacity 2
    for _ in range(2):
        limiter.acquire(settings.defaults.llm, MESSAGES, interactive=False)
    with pytest.raises(LLMError, match="rate limit: waited 0.5 s") as caught:
        limiter.acquire(settings.defaults.llm, MESSAGES, interactive=False)
    assert caught.value.retryable


def test_no_limits_means_no_limiter(real_store, settings, fake_llm):
    assert not RateLimiter(real_store, 0, 0, 0.2, 60).enabled
    LLM(real_store, 0, RateLimiter(real_store, 0, 0, 0.2, 60)).complete(settings.defaults.llm, MESSAGES)
    assert list(real_store.redis.scan_iter(f"{real_store.prefix}:ratelimit:*")) == []
