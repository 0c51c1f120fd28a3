"""One provider rate limit shared by every process: a token bucket in Redis, taken atomically.

``LLM_RPM`` and ``LLM_TPM`` apply per provider, endpoint and model.  Every worker and API process
asks the same bucket before a call and waits for its turn, rather than collecting 429s.  Batch work
leaves a reserve in the bucket (``LLM_INTERACTIVE_SHARE`` of its capacity) that only interactive
requests may take, so an annotator is not stuck behind a 100,000-task job.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from shared.adapters import deadline as request_deadline
from shared.adapters.store import Store
from shared.domain.backoff import spread
from shared.domain.config import LLMOptions, setting_default
from shared.domain.digests import endpoint_key
from shared.domain.errors import LLMError

# KEYS[1] the bucket; ARGV: rate per second, capacity, cost, level that must remain after taking, the level
# of a new bucket (the interactive reserve: a fresh start does not burst batch calls past the provider).
# Returns 0 when taken, else the seconds to wait before asking again.  Redis's own clock, so all
# processes agree whatever their clocks say.
_TAKE = """
local rate, capacity, cost, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local initial = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level, at = tonumber(state[1]), tonumber(state[2])
if level == nil then level, at = initial, now end
level = math.min(capacity, level + (now - at) * rate)
local wait = 0
if level - cost >= floor then
  level = level - cost
else
  wait = (floor + cost - level) / rate
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""

# Settle a token estimate against what the provider reported (may go negative: later callers wait).
_ADJUST = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'level', ARGV[1])
end
return 1
"""

COMPLETION_TOKENS_GUESS = 256  # per answer, until the provider tells us the real count


@dataclass(frozen=True)
class _Bucket:
    key: str
    rate: float  # per second
    capacity: float


class RateLimiter:
    def __init__(
        self,
        store: Store,
        rpm: int,
        tpm: int,
        interactive_share: float,
        max_wait: float,
        burst_seconds: float = setting_default("llm_burst_seconds"),
    ) -> None:
        """``burst_seconds``: a bucket holds this many seconds' worth of the rate (``LLM_BURST_SECONDS``)."""
        self.store = store
        self.rpm, self.tpm = rpm, tpm
        self.burst_seconds = burst_seconds
        self.interactive_share = interactive_share
        self.max_wait = max_wait
        self._take = store.redis.register_script(_TAKE)
        self._adjust = store.redis.register_script(_ADJUST)

    @property
    def enabled(self) -> bool:
        return bool(self.rpm or self.tpm)

    def _bucket(self, options: LLMOptions, kind: str, per_minute: int) -> _Bucket:
        rate = per_minute / 60.0
        key = self.store.key("ratelimit", kind, endpoint_key(options))
        return _Bucket(key, rate, max(rate * self.burst_seconds, 2.0))

    def estimate_tokens(self, options: LLMOptions, messages: list[dict[str, Any]]) -> int:
        """Roughly four characters a token, plus a guess at the answers."""
        return len(json.dumps(messages)) // 4 + COMPLETION_TOKENS_GUESS * options.num_responses

    def acquire(self, options: LLMOptions, messages: list[dict[str, Any]], interactive: bool) -> int:
        """Wait for a request (and its tokens) to fit under the limits; returns the tokens taken."""
        tokens = self.estimate_tokens(options, messages) if self.tpm else 0
        demands = []
        if self.rpm:
            demands.append((self._bucket(options, "rpm", self.rpm), 1.0))
        if self.tpm:
            demands.append((self._bucket(options, "tpm", self.tpm), float(tokens)))
        deadline = time.monotonic() + self.max_wait
        for bucket, cost in demands:
            self._wait_for(bucket, min(cost, bucket.capacity), interactive, deadline)
        return tokens

    def settle(self, options: LLMOptions, estimated: int, actual: int) -> None:
        """Correct the token bucket by what the call really used."""
        if self.tpm and actual:
            self._adjust(keys=[self._bucket(options, "tpm", self.tpm).key], args=[estimated - actual])

    def _wait_for(self, bucket: _Bucket, cost: float, interactive: bool, deadline: float) -> None:
        floor = 0.0 if interactive else bucket.capacity * self.interactive_share
        floor = min(floor, bucket.capacity - cost)
        while True:
            try:
                args = [bucket.rate, bucket.capacity, cost, floor, bucket.capacity * self.interactive_share]
                wait = float(self._take(keys=[bucket.key], args=args))
            except redis.RedisError:
                return  # no limiter is better than no predictions; the provider's 429s still apply
            if wait <= 0:
                return
            request_deadline.check(wait)  # an annotator's request gives up here rather than at LLM_RATE_WAIT
            if time.monotonic() + wait > deadline:
                raise LLMError(
                    f"rate limit: waited {self.max_wait:g} s for the shared LLM_RPM/LLM_TPM budget", retryable=True
                )
            time.sleep(spread(min(wait, 1.0)))
