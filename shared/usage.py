"""Tokens used and what they cost: summed per job and per project in Redis.

Prices are per million input and output tokens, per model: a small built-in table of list prices
(USD, which change: check yours), overridden or extended by ``LLM_PRICES``.  A model without a price
has no cost estimate rather than a wrong one.
"""

from __future__ import annotations

from shared.store import Store

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


def record_usage(
    store: Store, project: str | None, job_id: str | None, model: str, tokens_in: int, tokens_out: int
) -> None:
    pipe = store.redis.pipeline(transaction=False)
    if project:
        usage = store.key("project", project, "usage")
        pipe.hincrby(usage, f"{model}|in", tokens_in)
        pipe.hincrby(usage, f"{model}|out", tokens_out)
    if job_id:
        pipe.hincrby(store.key("job", job_id), "tokens_in", tokens_in)
        pipe.hincrby(store.key("job", job_id), "tokens_out", tokens_out)
    pipe.execute()


def project_usage(store: Store, project: str) -> dict[str, dict[str, int]]:
    """Tokens by model: ``{"gpt-4o": {"in": 1200, "out": 300}}``."""
    usage: dict[str, dict[str, int]] = {}
    for field, value in store.redis.hgetall(store.key("project", project, "usage")).items():
        model, direction = field.rsplit("|", 1)
        usage.setdefault(model, {"in": 0, "out": 0})[direction] = int(value)
    return usage


def estimate_cost(prices: dict[str, tuple[float, float]], model: str, tokens_in: int, tokens_out: int) -> float | None:
    price = prices.get(model)
    if price is None:
        return None
    return round((tokens_in * price[0] + tokens_out * price[1]) / 1_000_000, 6)
