"""Prompt refinement runs in Redis: the only module that touches ``improvement*`` keys.

A run is one JSON record (``improvement:<id>``), listed per project newest first; a project keeps its latest
``RUNS_KEPT`` runs, as evaluations do.
"""

from __future__ import annotations

import json

from shared.adapters.replies import text_list
from shared.adapters.store import Store
from shared.domain.improvement import ImprovementRun

RUNS_KEPT = 100  # per project


class ImprovementStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis = store.redis

    def _run(self, run_id: str) -> str:
        return self.store.key("improvement", run_id)

    def _runs(self, project: str) -> str:
        return self.store.key("project", project, "improvements")

    def save(self, run: ImprovementRun) -> None:
        """Keep the run; runs beyond the project's ``RUNS_KEPT`` newest are dropped."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._run(run.id), json.dumps(run.as_dict()))
        pipe.zadd(self._runs(run.project), {run.id: run.created_at})
        pipe.execute()
        old = text_list(self.redis.zrange(self._runs(run.project), 0, -RUNS_KEPT - 1))
        if old:
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(*(self._run(run_id) for run_id in old))
            pipe.zrem(self._runs(run.project), *old)
            pipe.execute()

    def get(self, run_id: str) -> ImprovementRun | None:
        raw = self.redis.get(self._run(run_id))
        return ImprovementRun.from_dict(json.loads(raw)) if raw else None

    def recent(self, project: str, limit: int = 20) -> list[ImprovementRun]:
        """The project's runs, newest first."""
        ids = text_list(self.redis.zrevrange(self._runs(project), 0, limit - 1))
        raws = self.redis.mget([self._run(run_id) for run_id in ids]) if ids else []
        return [ImprovementRun.from_dict(json.loads(raw)) for raw in raws if raw]
