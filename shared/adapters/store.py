"""Everything this backend keeps, in Redis, so every API and worker process sees the same state.

Per project: what ``/setup`` received (labeling config, Label Studio host and token, extra params),
the annotators' latest prompt, the model versions handed out and the tokens used.  Shared: the LLM response cache.
All keys live under one prefix (``REDIS_KEY_PREFIX``), so deployments and test runs can share a server.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis


@dataclass(frozen=True)
class ProjectSetup:
    """What Label Studio told us about a project in ``/setup``."""

    label_config: str
    hostname: str | None = None
    access_token: str | None = None
    extra_params: dict[str, Any] | None = None

    def __repr__(self) -> str:  # the token must never reach logs
        return f"ProjectSetup(hostname={self.hostname!r}, access_token=***, extra_params=…)"


def project_id_of(value: Any) -> str | None:
    """Label Studio names a project ``"<id>.<created-unix-ts>"`` in /setup and /predict, ``{"id": N}`` in webhooks."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    head = text.split(".", 1)[0]
    return head if head.isdigit() else None


class Store:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str) -> Store:
        return cls(redis.Redis.from_url(url, decode_responses=True, health_check_interval=30), prefix)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # --- projects --------------------------------------------------------------------------------
    def save_setup(self, project: str, setup: ProjectSetup) -> None:
        self.redis.set(self.key("project", project, "setup"), json.dumps(asdict(setup)))

    def load_setup(self, project: str) -> ProjectSetup | None:
        raw = self.redis.get(self.key("project", project, "setup"))
        return ProjectSetup(**json.loads(raw)) if raw else None

    def prompt(self, project: str) -> str | None:
        return self.redis.get(self.key("project", project, "prompt"))

    def save_prompt(self, project: str, prompt: str) -> bool:
        """Store the annotators' prompt; True when it differs from the one stored before."""
        previous = self.redis.set(self.key("project", project, "prompt"), prompt, get=True)
        return previous != prompt

    def record_version(self, project: str, version: str) -> None:
        """Remember a version handed out for the project (first time seen wins), for ``/versions``."""
        self.redis.zadd(self.key("project", project, "versions"), {version: time.time()}, nx=True)

    def versions(self, project: str) -> list[str]:
        return self.redis.zrange(self.key("project", project, "versions"), 0, -1)

    def add_usage(self, project: str, model: str, tokens_in: int, tokens_out: int) -> None:
        """Count one call that reached the provider, with the tokens it reported."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(self.key("project", project, "usage"), f"{model}|in", tokens_in)
        pipe.hincrby(self.key("project", project, "usage"), f"{model}|out", tokens_out)
        pipe.hincrby(self.key("project", project, "calls"), model, 1)
        pipe.execute()

    def calls(self, project: str) -> dict[str, int]:
        """Calls that reached the provider, by model (the denominators of ``usage``)."""
        return {model: int(count) for model, count in self.redis.hgetall(self.key("project", project, "calls")).items()}

    def usage(self, project: str) -> dict[str, dict[str, int]]:
        """Tokens by model: ``{"gpt-4o": {"in": 1200, "out": 300}}``."""
        usage: dict[str, dict[str, int]] = {}
        for field, value in self.redis.hgetall(self.key("project", project, "usage")).items():
            model, direction = field.rsplit("|", 1)
            usage.setdefault(model, {"in": 0, "out": 0})[direction] = int(value)
        return usage

    # --- LLM response cache ----------------------------------------------------------------------
    def cached_answer(self, key: str) -> dict | None:
        raw = self.redis.get(self.key("cache", key))
        return json.loads(raw) if raw else None

    def cache_answer(self, key: str, answer: dict, ttl: int) -> None:
        if ttl > 0:
            self.redis.set(self.key("cache", key), json.dumps(answer), ex=ttl)
