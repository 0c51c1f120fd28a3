"""A provider's rate limits: ``rpm`` requests and ``tpm`` tokens per minute, as token buckets refilled
continuously and holding ``burst`` seconds' worth.  A request over a limit is refused at once with a 429, a
``Retry-After`` of whole seconds (at least 1) and ``x-ratelimit-*`` headers, in OpenAI's words."""

from __future__ import annotations

import math
import time

from tests.fakes.openai_server.errors import ApiError

COMPLETION_TOKENS_GUESS = 3  # what a request is charged for each answer before it is written, as a provider guesses


class RateLimited(ApiError):
    """A 429 for going over ``which`` ("requests" or "tokens") per minute."""

    def __init__(self, which: str, wait: float, headers: dict[str, str]) -> None:
        message = f"Rate limit reached for {which} per minute. Please try again in {wait:.3f}s."
        headers = {"Retry-After": str(max(1, math.ceil(wait))), f"x-ratelimit-reset-{which}": f"{wait:.3f}s"} | headers
        super().__init__(429, message, code="rate_limit_exceeded", kind=which, headers=headers)
        self.which = which


class Bucket:
    """A token bucket refilled at ``per_minute / 60`` per second, holding ``burst`` seconds' worth."""

    def __init__(self, per_minute: float, burst: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst)
        self.level = self.capacity
        self.at = time.monotonic()

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` can be taken (0 when it can be now). A request larger than the bucket
        passes when the bucket is full and leaves it in debt."""
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def remaining(self) -> int:
        return max(0, int(self.level))


class RateLimits:
    """The buckets of one set of limits (0: no limit); callers hold the fake's lock."""

    def __init__(self, rpm: float, tpm: float, burst: float) -> None:
        self.settings = (rpm, tpm, burst)
        limits = {"requests": rpm, "tokens": tpm}
        self.buckets = {which: Bucket(per_minute, burst) for which, per_minute in limits.items() if per_minute > 0}

    def admit(self, tokens: int) -> None:
        """Take one request and ``tokens`` from the buckets, or raise RateLimited naming the first limit hit."""
        now = time.monotonic()
        amounts = {"requests": 1, "tokens": tokens}
        waits = {which: bucket.wait_for(amounts[which], now) for which, bucket in self.buckets.items()}
        over = [which for which, wait in waits.items() if wait > 0]
        if over:
            raise RateLimited(over[0], max(waits.values()), self._headers())
        for which, bucket in self.buckets.items():
            bucket.level -= amounts[which]

    def _headers(self) -> dict[str, str]:
        return {
            header: value
            for which, bucket in self.buckets.items()
            for header, value in (
                (f"x-ratelimit-limit-{which}", str(int(bucket.per_minute))),
                (f"x-ratelimit-remaining-{which}", str(bucket.remaining())),
            )
        }
