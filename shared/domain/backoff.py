"""Whether to try again and how long to wait first: one rule of retryable HTTP statuses for the LLM and Label
Studio, one formula of waits for the LLM client, chunks and the rate limit."""

from __future__ import annotations

import random

RETRYABLE_STATUSES = frozenset({408, 409, 429})  # timeout, conflict, too many requests; and every 5xx


def retryable_status(status: int) -> bool:
    """Whether an HTTP answer with this status may succeed if asked again (0: no status at all, as when the
    answer never came)."""
    return status == 0 or status in RETRYABLE_STATUSES or status >= 500


def backoff(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """``base``·2^attempt seconds, at most ``cap``, jittered to 50–100 %: retrying clients spread out
    instead of coming back together (the "full jitter" family, halved so a retry never comes at once)."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2.0**attempt)


def spread(seconds: float) -> float:
    """``seconds`` plus up to 20 %: waiters told the same wait do not all wake at the same instant."""
    return seconds * random.uniform(1.0, 1.2)
