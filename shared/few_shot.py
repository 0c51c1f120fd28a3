"""The few-shot example pool of a project: read from Label Studio, kept in Redis, built into an index once.

The pool is the project's tasks that have a ground truth (``LabelStudioGateway.annotated_tasks``, the reading
``eval`` scores against), kept in Redis under a key derived from its content, so a batch job's snapshot names
the exact pool it was started with and every worker predicts with it.  Which pool is current for a project is
kept beside it with the time it was read: requests use it for ``FEW_SHOT_REFRESH`` seconds, then read Label
Studio again (should that fail, the pool kept goes on serving, with a warning); a job reads it afresh when it
starts (``max_age=0``).  Pools live for ``JOB_TTL`` from their last use by a job.

Each process builds a pool's examples and their BM25 index once per labeling config (``ExamplePool``), the
few most recent ones kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from shared.adapters.label_studio import LabelStudioAccess, LabelStudioGateways
from shared.adapters.replies import text_dict
from shared.adapters.store import Store
from shared.domain.config import Settings
from shared.domain.errors import ConfigError, LabelStudioError
from shared.domain.evaluation.ground_truth import GroundTruthTask
from shared.domain.labeling.spec import LabelingSpec
from shared.domain.prompts.few_shot import ExamplePool, examples_from

log = logging.getLogger(__name__)

BUILT_POOLS = 8  # example pools (with their index) kept per process


class FewShotPools:
    def __init__(self, settings: Settings, store: Store, label_studio: LabelStudioGateways) -> None:
        self.settings = settings
        self.store = store
        self.label_studio = label_studio
        self._built: OrderedDict[tuple[str, str], ExamplePool] = OrderedDict()
        self._lock = threading.Lock()

    def _pool_key(self, key: str) -> str:
        return self.store.key("fewshot", "pool", key)

    def _current_key(self, project: str) -> str:
        return self.store.key("fewshot", "project", project)

    def current(self, project: str, access: LabelStudioAccess | None, max_age: float, problem: str | None) -> str:
        """The key of the project's pool, read again from Label Studio when the one kept is older than ``max_age``
        seconds (or gone)."""
        kept = text_dict(self.store.redis.hgetall(self._current_key(project)))
        usable = bool(kept) and bool(self.store.redis.exists(self._pool_key(kept["pool"])))
        if usable and time.time() - float(kept["at"]) < max_age:
            return kept["pool"]
        try:
            return self.refresh(project, access, problem)
        except LabelStudioError as exc:
            if not usable:
                raise
            log.warning("project %s: few-shot examples not read again, the pool kept serves: %s", project, exc)
            return kept["pool"]

    def refresh(self, project: str, access: LabelStudioAccess | None, problem: str | None) -> str:
        """Read the project's annotated tasks from Label Studio and keep them as its current pool."""
        if access is None:
            raise ConfigError(
                f"FEW_SHOT_EXAMPLES needs the project's annotations from Label Studio, which cannot be read: {problem}"
            )
        pool = [
            {"id": int(task["id"]), "data": task.get("data") or {}, "truth": truth}
            for task, truth in self.label_studio(access).annotated_tasks(int(project))
            if truth is not None
        ]
        body = json.dumps(pool, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        key = hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        with self.store.one_round_trip() as pipe:
            pipe.set(self._pool_key(key), body, ex=self.settings.job_ttl)
            pipe.hset(self._current_key(project), mapping={"pool": key, "at": time.time()})
        log.info("project %s: few-shot pool %s read, %d annotated tasks", project, key, len(pool))
        return key

    def keep(self, key: str) -> None:
        """A job uses this pool: keep it for ``JOB_TTL`` from now."""
        self.store.redis.expire(self._pool_key(key), self.settings.job_ttl)

    def examples(self, key: str, label_config: str, spec: LabelingSpec) -> ExamplePool:
        """The pool's examples for this labeling config; ConfigError when the pool is no longer kept."""
        with self._lock:
            built = self._built.get((key, label_config))
            if built is not None:
                self._built.move_to_end((key, label_config))
                return built
        raw = self.store.redis.get(self._pool_key(key))
        if raw is None:
            raise ConfigError(f"the few-shot example pool {key} is no longer kept (JOB_TTL): start the job again")
        items: list[dict[str, Any]] = json.loads(raw)
        tasks = [GroundTruthTask(int(item["id"]), item["data"], item["truth"]) for item in items]
        built = ExamplePool(examples_from(spec, tasks))
        with self._lock:
            self._built[(key, label_config)] = built
            while len(self._built) > BUILT_POOLS:
                self._built.popitem(last=False)
        return built
