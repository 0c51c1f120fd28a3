"""Prompt refinement runs in Redis: the only module that touches ``improvement*`` keys.

A run is one JSON record (``improvement:<id>``), listed per project newest first; a project keeps its latest
``RUNS_KEPT`` runs, as evaluations do (``shared.adapters.kept_runs``).
"""

from __future__ import annotations

from shared.adapters.kept_runs import KeptRuns
from shared.adapters.store import Store
from shared.domain.prompts.improvement import ImprovementRun


class ImprovementStore:
    def __init__(self, store: Store) -> None:
        self.runs = KeptRuns(store, "improvement", "improvements", ImprovementRun.from_dict)
        self.redis = store.redis

    def save(self, run: ImprovementRun) -> None:
        """Keep the run; runs beyond the project's ``RUNS_KEPT`` newest are dropped."""
        pipe = self.redis.pipeline(transaction=True)
        self.runs.write(pipe, run)
        pipe.execute()
        old = self.runs.beyond_kept(run.project)
        if old:
            pipe = self.redis.pipeline(transaction=True)
            self.runs.drop(pipe, run.project, old)
            pipe.execute()

    def get(self, run_id: str) -> ImprovementRun | None:
        return self.runs.get(run_id)

    def recent(self, project: str, limit: int = 20) -> list[ImprovementRun]:
        """The project's runs, newest first."""
        return self.runs.recent(project, limit)
