"""Tokens used: summed per job and per project in Redis (what they cost: ``shared.domain.pricing``)."""

from __future__ import annotations

from shared.adapters.store import Store


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
