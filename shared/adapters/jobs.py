"""Batch jobs and the exactly-once ledger, in Redis.

A job is what one Retrieve Predictions asked for: its tasks (stored in chunks, so Celery messages
carry only ``(job id, chunk index)``), a snapshot of the request, and per-job sets of the tasks done,
failed and pushed.  Counts are the sizes of those sets, so a redelivered chunk cannot count twice.

The ledger is keyed by (project, model version), not by job: it remembers which tasks have a
prediction in Label Studio (``pushed``), which have one waiting to be pushed (``results``), and
which are being pushed right now (``pushing``, for recovery after a crash mid-push).  A task is
claimed while a worker predicts and pushes it, so two deliveries of the same chunk never both work
on it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from shared.adapters.store import Store
from shared.domain.pricing import estimate_cost

MAX_ERRORS_KEPT = 100
FINISHED_STATES = ("done", "failed", "partial", "cancelled")


@dataclass(frozen=True)
class JobStatus:
    id: str
    project: str | None
    model_version: str
    state: str
    total: int
    done: int
    failed: int
    pushed: int
    errors: list[dict]
    created_at: float
    finished_at: float | None
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "model_version": self.model_version,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "pushed": self.pushed,
            "errors": self.errors,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "model": self.model,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
        }


def _members(redis_client, key: str, task_ids: list[Any]) -> list[bool]:
    """Which of these tasks are in the set at ``key``, in one round trip."""
    if not task_ids:
        return []
    return [bool(flag) for flag in redis_client.smismember(key, [str(task_id) for task_id in task_ids])]


def chunked(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Jobs:
    def __init__(self, store: Store, ttl: int, prices: dict[str, tuple[float, float]] | None = None) -> None:
        self.store = store
        self.redis = store.redis
        self.ttl = ttl
        self.prices = prices or {}

    def _job(self, job_id: str, *parts: str) -> str:
        return self.store.key("job", job_id, *parts)

    # --- creating -------------------------------------------------------------------------------
    def create(self, snapshot: dict[str, Any], tasks: list[dict], chunk_size: int) -> str:
        """Store a job and its tasks in one round trip; returns its id."""
        job_id = uuid.uuid4().hex
        now = time.time()
        chunks = list(chunked([{"id": task.get("id"), "data": task["data"]} for task in tasks], chunk_size))
        project = snapshot.get("project") or ""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(
            self._job(job_id),
            mapping={
                "id": job_id,
                "project": project,
                "model_version": snapshot["model_version"],
                "model": snapshot.get("model", ""),
                "state": "queued",
                "total": len(tasks),
                "chunks": len(chunks),
                "dispatched": 0,
                "created_at": now,
                "snapshot": json.dumps(snapshot),
            },
        )
        pipe.expire(self._job(job_id), self.ttl)
        for index, chunk in enumerate(chunks):
            pipe.set(self._job(job_id, "chunk", str(index)), json.dumps(chunk), ex=self.ttl)
        pipe.zadd(self.store.key("jobs"), {job_id: now})
        if project:
            pipe.zadd(self.store.key("project", project, "jobs"), {job_id: now})
        pipe.execute()
        return job_id

    # --- reading --------------------------------------------------------------------------------
    def snapshot(self, job_id: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self._job(job_id), "snapshot")
        return json.loads(raw) if raw else None

    def chunk_count(self, job_id: str) -> int:
        return int(self.redis.hget(self._job(job_id), "chunks") or 0)

    def chunk_tasks(self, job_id: str, index: int) -> list[dict] | None:
        raw = self.redis.get(self._job(job_id, "chunk", str(index)))
        return json.loads(raw) if raw else None

    def status(self, job_id: str) -> JobStatus | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self._job(job_id))
        for name in ("done", "failed", "pushed"):
            pipe.scard(self._job(job_id, name))
        pipe.lrange(self._job(job_id, "errors"), 0, -1)
        record, done, failed, pushed, errors = pipe.execute()
        if not record:
            return None
        tokens_in, tokens_out = int(record.get("tokens_in", 0)), int(record.get("tokens_out", 0))
        model = record.get("model", "")
        return JobStatus(
            id=job_id,
            project=record.get("project") or None,
            model_version=record["model_version"],
            state=record["state"],
            total=int(record["total"]),
            done=done,
            failed=failed,
            pushed=pushed,
            errors=[json.loads(error) for error in errors],
            created_at=float(record["created_at"]),
            finished_at=float(record["finished_at"]) if record.get("finished_at") else None,
            model=model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=estimate_cost(self.prices, model, tokens_in, tokens_out),
        )

    def recent(self, project: str | None = None, limit: int = 50) -> list[JobStatus]:
        index = self.store.key("project", project, "jobs") if project else self.store.key("jobs")
        statuses = (self.status(job_id) for job_id in self.redis.zrevrange(index, 0, limit - 1))
        return [status for status in statuses if status is not None]

    # --- progress -------------------------------------------------------------------------------
    def mark_dispatched(self, job_id: str, count: int) -> None:
        self.redis.hset(self._job(job_id), "dispatched", count)

    def dispatched(self, job_id: str) -> int:
        return int(self.redis.hget(self._job(job_id), "dispatched") or 0)

    def state(self, job_id: str) -> str | None:
        return self.redis.hget(self._job(job_id), "state")

    def cancel(self, job_id: str) -> JobStatus | None:
        """Stop a job: chunks not started yet do nothing when they come; running ones finish."""
        status = self.status(job_id)
        if status is None or status.state in FINISHED_STATES:
            return status
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self._job(job_id), mapping={"state": "cancelled", "finished_at": time.time()})
        pipe.execute()
        return self.status(job_id)

    def unfinished_chunks(self, job_id: str) -> list[int]:
        finished = {int(index) for index in self.redis.smembers(self._job(job_id, "chunks_done"))}
        return [index for index in range(self.chunk_count(job_id)) if index not in finished]

    def activity(self, job_id: str) -> tuple[str | None, float]:
        """The job's state and when a chunk of it last started or finished (else when it was created)."""
        state, progress, created = self.redis.hmget(self._job(job_id), "state", "progress_at", "created_at")
        return state, float(progress or created or 0)

    def touch(self, job_id: str) -> None:
        self.redis.hset(self._job(job_id), "progress_at", time.time())

    def mark_running(self, job_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hsetnx(self._job(job_id), "started_at", time.time())
        pipe.hset(self._job(job_id), "progress_at", time.time())
        pipe.hget(self._job(job_id), "state")
        _, _, state = pipe.execute()
        if state == "queued":
            self.redis.hset(self._job(job_id), "state", "running")

    def add(self, job_id: str, name: str, task_ids: Iterable[Any]) -> None:
        """Add tasks to the job's ``done``, ``failed`` or ``pushed`` set."""
        ids = [str(task_id) for task_id in task_ids]
        if ids:
            pipe = self.redis.pipeline(transaction=False)
            pipe.sadd(self._job(job_id, name), *ids)
            pipe.expire(self._job(job_id, name), self.ttl)
            pipe.execute()

    def members(self, job_id: str, name: str, task_ids: list[Any]) -> list[bool]:
        return _members(self.redis, self._job(job_id, name), task_ids)

    def record_error(self, job_id: str, task_id: Any, message: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(self._job(job_id, "errors"), json.dumps({"task": task_id, "error": message}))
        pipe.ltrim(self._job(job_id, "errors"), -MAX_ERRORS_KEPT, -1)
        pipe.expire(self._job(job_id, "errors"), self.ttl)
        pipe.execute()

    def abort(self, job_id: str, message: str) -> None:
        """A job that cannot run at all: failed, with the reason as its error."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self._job(job_id), mapping={"state": "failed", "finished_at": time.time()})
        pipe.rpush(self._job(job_id, "errors"), json.dumps({"task": None, "error": message}))
        pipe.expire(self._job(job_id, "errors"), self.ttl)
        pipe.execute()

    def finish_chunk(self, job_id: str, index: int) -> JobStatus | None:
        """Mark a chunk finished (its data is no longer needed); the last one settles the job's state."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self._job(job_id, "chunks_done"), index)
        pipe.expire(self._job(job_id, "chunks_done"), self.ttl)
        pipe.scard(self._job(job_id, "chunks_done"))
        pipe.delete(self._job(job_id, "chunk", str(index)))
        pipe.hset(self._job(job_id), "progress_at", time.time())
        _, _, finished_chunks, _, _ = pipe.execute()
        if finished_chunks < self.chunk_count(job_id):
            return None
        status = self.status(job_id)
        if status is None or status.state == "cancelled":
            return status
        state = "done" if status.failed == 0 else ("failed" if status.done == 0 else "partial")
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self._job(job_id), "state", state)
        pipe.hsetnx(self._job(job_id), "finished_at", time.time())
        pipe.execute()
        return self.status(job_id)


class Ledger:
    """Exactly-once bookkeeping for one (project, model version)."""

    def __init__(self, store: Store, project: str | None, model_version: str, ttl: int) -> None:
        self.redis = store.redis
        self.store = store
        self.project = project or "-"
        self.version = model_version
        self.ttl = ttl

    def _key(self, *parts: str) -> str:
        return self.store.key("ledger", self.project, self.version, *parts)

    def pushed(self, task_ids: list[Any]) -> list[bool]:
        return _members(self.redis, self._key("pushed"), task_ids)

    def claim(self, task_ids: list[Any], owner: str, seconds: int) -> tuple[list[Any], list[Any]]:
        """Claim tasks for ``owner``; returns (claimed, held by someone else)."""
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.set(self._key("claim", str(task_id)), owner, nx=True, ex=seconds)
        flags = pipe.execute()
        claimed = [task_id for task_id, ok in zip(task_ids, flags, strict=True) if ok]
        busy = [task_id for task_id, ok in zip(task_ids, flags, strict=True) if not ok]
        return claimed, busy

    def extend(self, task_ids: list[Any], owner: str, seconds: int) -> None:
        """Keep our claims alive (a claim that lapsed and was taken over is left alone)."""
        if not task_ids:
            return
        keys = [self._key("claim", str(task_id)) for task_id in task_ids]
        mine = [key for key, holder in zip(keys, self.redis.mget(keys), strict=True) if holder == owner]
        if mine:
            pipe = self.redis.pipeline(transaction=False)
            for key in mine:
                pipe.expire(key, seconds)
            pipe.execute()

    def release(self, task_ids: list[Any], owner: str) -> None:
        """Drop our claims (only ours: a claim that expired and was taken over stays)."""
        if not task_ids:
            return
        keys = [self._key("claim", str(task_id)) for task_id in task_ids]
        owners = self.redis.mget(keys)
        mine = [key for key, holder in zip(keys, owners, strict=True) if holder == owner]
        if mine:
            self.redis.delete(*mine)

    def results(self, task_ids: list[Any]) -> dict[str, dict]:
        """Predictions made earlier and not pushed yet."""
        if not task_ids:
            return {}
        raw = self.redis.hmget(self._key("results"), [str(t) for t in task_ids])
        return {str(task_id): json.loads(value) for task_id, value in zip(task_ids, raw, strict=True) if value}

    def keep_result(self, task_id: Any, prediction: dict) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self._key("results"), str(task_id), json.dumps(prediction))
        pipe.expire(self._key("results"), self.ttl)
        pipe.execute()

    def pushing(self, task_ids: list[Any]) -> list[Any]:
        """Of these tasks, those a crashed worker may or may not have pushed."""
        if not task_ids:
            return []
        flags = self.redis.hmget(self._key("pushing"), [str(t) for t in task_ids])
        return [task_id for task_id, flag in zip(task_ids, flags, strict=True) if flag]

    def begin_push(self, task_ids: list[Any]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self._key("pushing"), mapping={str(t): time.time() for t in task_ids})
        pipe.expire(self._key("pushing"), self.ttl)
        pipe.execute()

    def forget(self, task_ids: list[Any]) -> None:
        """Drop predictions Label Studio refused: resending them cannot help."""
        ids = [str(t) for t in task_ids]
        if ids:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hdel(self._key("results"), *ids)
            pipe.hdel(self._key("pushing"), *ids)
            pipe.execute()

    def end_push(self, task_ids: list[Any]) -> None:
        """Record tasks as pushed and drop their waiting results."""
        ids = [str(t) for t in task_ids]
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(self._key("pushed"), *ids)
        pipe.expire(self._key("pushed"), self.ttl)
        pipe.hdel(self._key("results"), *ids)
        pipe.hdel(self._key("pushing"), *ids)
        pipe.execute()
