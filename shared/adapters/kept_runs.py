"""Runs of one kind kept in Redis (evaluations, prompt improvements): one JSON record each
(``<kind>:<id>``), listed per project newest first (``project:<id>:<listing>``), the newest ``RUNS_KEPT`` kept
so that what a project leaves behind stays bounded.  Each kind's store adds what only it keeps."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from redis.client import Pipeline

from shared.adapters.replies import text_list
from shared.adapters.store import Store

RUNS_KEPT = 100  # per project and kind


class Run(Protocol):
    id: str
    project: str
    created_at: float

    def as_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Run)


class KeptRuns(Generic[R]):
    def __init__(self, store: Store, kind: str, listing: str, read: Callable[[dict[str, Any]], R]) -> None:
        self.store, self.redis = store, store.redis
        self.kind, self.listing, self.read = kind, listing, read

    def key(self, run_id: str) -> str:
        return self.store.key(self.kind, run_id)

    def listing_key(self, project: str) -> str:
        return self.store.key("project", project, self.listing)

    def write(self, pipe: Pipeline, run: R) -> None:
        """Add the run (again, after a change of state) to ``pipe``."""
        pipe.set(self.key(run.id), json.dumps(run.as_dict()))
        pipe.zadd(self.listing_key(run.project), {run.id: run.created_at})

    def beyond_kept(self, project: str) -> list[str]:
        """The ids of the project's runs older than its newest ``RUNS_KEPT``."""
        return text_list(self.redis.zrange(self.listing_key(project), 0, -RUNS_KEPT - 1))

    def drop(self, pipe: Pipeline, project: str, run_ids: list[str]) -> None:
        pipe.delete(*(self.key(run_id) for run_id in run_ids))
        pipe.zrem(self.listing_key(project), *run_ids)

    def get(self, run_id: str) -> R | None:
        raw = self.redis.get(self.key(run_id))
        return self.read(json.loads(raw)) if raw else None

    def recent(self, project: str, limit: int = 20) -> list[R]:
        """The project's runs, newest first."""
        ids = text_list(self.redis.zrevrange(self.listing_key(project), 0, limit - 1))
        raws = self.redis.mget([self.key(run_id) for run_id in ids]) if ids else []
        return [self.read(json.loads(raw)) for raw in raws if raw]
