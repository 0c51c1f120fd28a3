"""Batch jobs, in Redis: the only module that touches ``job:*`` keys.

A job is what one Retrieve Predictions asked for: its task ids (stored in chunks, so Celery messages carry
only ``(job id, chunk index)``; the data is read from Label Studio when a chunk runs), a snapshot of the
request, and per-job sets of the tasks done, failed and pushed.  Counts are the sizes of those sets, so a
redelivered chunk cannot count twice.  Every change of a job's state is one atomic step (a Lua script) from
the states allowed to the new one, so a ``cancel`` racing a worker's ``mark_running`` or last ``finish_chunk``
always wins.  A job may be opened before its tasks are all known (``llm-backend batch`` reads a large project
page by page): it takes chunks (``extend``) until it is sealed, and its last chunk settles it only once sealed.

The exactly-once ledger of each (project, model version) lives in ``shared.adapters.ledger``; ``Jobs.ledger`` hands
it out with the jobs' TTL and handover grace.
"""

from __future__ import annotations

import enum
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.client import Pipeline

from shared.adapters.ledger import Ledger, members
from shared.adapters.replies import text, text_dict, text_list, text_set
from shared.adapters.store import Store
from shared.domain.config import Settings, setting_default
from shared.domain.errors import JobPaused
from shared.domain.estimation.pricing import Price, TokenUsage, usage_cost
from shared.domain.types import JobSnapshot, TaskId
from shared.redaction import redact

log = logging.getLogger(__name__)


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    PARTIAL = "partial"  # some tasks failed, some were predicted
    CANCELLED = "cancelled"
    PAUSED = "paused"  # by its owner or at its budget: no LLM call until resumed

    @property
    def finished(self) -> bool:
        return self not in LIVE_STATES


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)  # the job's chunks run
LIVE_STATES = (*ACTIVE_STATES, JobState.PAUSED)  # not finished: it may run again

# A job sent through the provider's Batch API goes through these phases (``shared.batch_jobs``).
SUBMITTING, POLLING, COLLECTED = "submitting", "polling", "collected"
WAITING_FOR_BATCHES = frozenset({SUBMITTING, POLLING})  # the job's chunks must not run yet
# What a job's spend is computed from (``Jobs._cost``): its model and token counts, live and Batch API.
SPEND_FIELDS = ["model", "calls", *(f"{p}tokens_{n}" for p in ("", "batch_") for n in ("in", "out", "cached"))]


@dataclass(frozen=True)
class Backlog:
    """What an autoscaler reads (``/metrics``): the work the LLM still has to do, and what waits on Label Studio."""

    waiting: int  # tasks of live jobs that no worker's window has started
    in_flight: int  # LLM calls the workers' windows have open
    for_label_studio: int  # tasks predicted, their prediction not in Label Studio yet


# KEYS[1] the job hash; ARGV[1] the new state, ARGV[2] now, ARGV[3] 1 when the new state is final,
# ARGV[4..] the states it may come from.  Returns the state the job is in afterwards ('' when missing).
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return '' end
for i = 4, #ARGV do
  if state == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], 'progress_at', ARGV[2])
    if ARGV[3] == '1' then redis.call('HSETNX', KEYS[1], 'finished_at', ARGV[2]) end
    return ARGV[1]
  end
end
return state
"""

# Settles an active job whose every chunk is finished, once it is sealed (no more chunks to come), from its
# counts: KEYS[1] the job hash, KEYS[2] chunks_done, KEYS[3] done, KEYS[4] failed; ARGV[1] now.  Leaves
# ``state`` the job's state afterwards.
_SETTLE = """
local state = redis.call('HGET', KEYS[1], 'state')
local chunks = tonumber(redis.call('HGET', KEYS[1], 'chunks') or '0')
local open = redis.call('HGET', KEYS[1], 'sealed') == '0'
local live = state == 'queued' or state == 'running' or state == 'paused'
if not open and live and redis.call('SCARD', KEYS[2]) >= chunks then
  local failed, done = redis.call('SCARD', KEYS[4]), redis.call('SCARD', KEYS[3])
  if failed == 0 then state = 'done' elseif done == 0 then state = 'failed' else state = 'partial' end
  redis.call('HSET', KEYS[1], 'state', state)
  redis.call('HSETNX', KEYS[1], 'finished_at', ARGV[1])
end
"""

# KEYS: job hash, chunks_done set, done set, failed set, the chunk's data, holders hash.  ARGV: now, chunk
# index, ttl.
# Marks the chunk finished; when it was the last one of a sealed job still active, settles the job's final
# state from its counts, in the same step.  Returns the job's state afterwards.
_FINISH_CHUNK = (
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('DEL', KEYS[5])
redis.call('HDEL', KEYS[6], ARGV[2])
redis.call('HSET', KEYS[1], 'progress_at', ARGV[1])
"""
    + _SETTLE
    + "return state\n"
)

# KEYS: job hash, chunks_done set, done set, failed set.  ARGV: now.  No chunk is added any more; a job whose
# chunks are all finished already is settled.  Returns the job's state afterwards ('' when missing).
_SEAL = (
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
redis.call('HSET', KEYS[1], 'sealed', '1', 'progress_at', ARGV[1])
"""
    + _SETTLE
    + "return state\n"
)

# KEYS[1] the job hash.  ARGV: now, ttl, the chunks' key without the index, the tasks added, then each chunk's
# task ids (JSON).  Appends chunks to a job not finished (a paused one too) and not sealed; returns the index of the
# first, or -1.
_EXTEND = """
local state = redis.call('HGET', KEYS[1], 'state')
if (state ~= 'queued' and state ~= 'running' and state ~= 'paused') or redis.call('HGET', KEYS[1], 'sealed') ~= '0' then
  return -1
end
local first = tonumber(redis.call('HGET', KEYS[1], 'chunks') or '0')
for i = 5, #ARGV do
  redis.call('SET', ARGV[3] .. (first + i - 5), ARGV[i], 'EX', tonumber(ARGV[2]))
end
redis.call('HINCRBY', KEYS[1], 'chunks', #ARGV - 4)
redis.call('HINCRBY', KEYS[1], 'total', tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'progress_at', ARGV[1], 'extended_at', ARGV[1])
return first
"""


# Lazy dispatch: a job keeps at most ``JOB_QUEUED_CHUNKS`` x its priority chunk messages in the broker's queue
# (their indices in the ``queued`` set), and each one a worker takes is replaced by the job's next chunk, so the
# FIFO queue interleaves the jobs running.  A set, not a counter: a message delivered twice, or sent again by a
# watchdog or a retry, takes nothing off twice.  ``refill`` (KEYS[1] the job hash, KEYS[2] its queued set; ARGV[1]
# the quota per priority, ARGV[2] the ttl) marks the job's next chunks queued while it is active and not waiting
# for the Batch API, and returns the range of chunk indices to send: {first, last + 1}.
_REFILL = """
local function refill()
  local state = redis.call('HGET', KEYS[1], 'state')
  local phase = redis.call('HGET', KEYS[1], 'batch_phase')
  local first = tonumber(redis.call('HGET', KEYS[1], 'dispatched') or '0')
  if (state ~= 'queued' and state ~= 'running') or phase == 'submitting' or phase == 'polling' then
    return {first, first}
  end
  local chunks = tonumber(redis.call('HGET', KEYS[1], 'chunks') or '0')
  local quota = tonumber(ARGV[1]) * tonumber(redis.call('HGET', KEYS[1], 'priority') or '1')
  local count = math.min(quota - redis.call('SCARD', KEYS[2]), chunks - first)
  if count <= 0 then return {first, first} end
  for index = first, first + count - 1 do redis.call('SADD', KEYS[2], index) end
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
  redis.call('HSET', KEYS[1], 'dispatched', first + count)
  return {first, first + count}
end
"""

_DISPATCH = _REFILL + "return refill()\n"

# KEYS: the job hash, its queued set, its parked set.  ARGV: quota, ttl, the chunk index taken.  A worker took a
# chunk's message: it is no longer queued; while the job is paused it is parked (not run: resume sends it again)
# and {-1, -1} returned, else the job's next chunks are queued in its place (the range to send).
_TAKE_CHUNK = (
    _REFILL
    + """
redis.call('SREM', KEYS[2], ARGV[3])
if redis.call('HGET', KEYS[1], 'state') == 'paused' then
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2]))
  return {-1, -1}
end
return refill()
"""
)

# KEYS: the job hash.  ARGV: now, the reason.  Pauses an active job; returns the state afterwards ('' when missing).
_PAUSE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return '' end
if state ~= 'queued' and state ~= 'running' then return state end
redis.call('HSET', KEYS[1], 'state', 'paused', 'message', ARGV[2], 'progress_at', ARGV[1])
return 'paused'
"""

# KEYS: the job hash, its queued set, its parked set.  ARGV: quota, ttl, now, a new budget ('' keeps it).  Resumes a
# paused job where it stopped: running (queued when no chunk ever started), its parked chunks queued again and
# its next ones up to its quota.  Returns {state, first, last + 1, parked...}; a job not paused is left as it is.
_RESUME = (
    _REFILL
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {''} end
if state ~= 'paused' then return {state} end
if redis.call('HEXISTS', KEYS[1], 'started_at') == 1 then state = 'running' else state = 'queued' end
redis.call('HSET', KEYS[1], 'state', state, 'progress_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'message')
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'max_usd', ARGV[4]) end
local parked = redis.call('SMEMBERS', KEYS[3])
redis.call('DEL', KEYS[3])
for _, index in ipairs(parked) do redis.call('SADD', KEYS[2], index) end
local sent = refill()
return {state, sent[1], sent[2], unpack(parked)}
"""
)

# KEYS: the job hash, its queued set.  ARGV: quota, ttl, then chunk indices.  A stalled job's dispatched chunks
# are sent again: they become its queued chunks (whatever the set said: its messages may be lost), topped up to
# its quota.  Returns the range of further chunks to send.
_REQUEUE = (
    _REFILL
    + """
redis.call('DEL', KEYS[2])
for i = 3, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
return refill()
"""
)


# KEYS[1] a job's holders hash; ARGV[1] a chunk index, ARGV[2] its holder.  Forgets the holder only while it is
# still that one (a worker that took the chunk again meanwhile stays).
_DROP_HOLDER = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

# KEYS[1] the job hash; ARGV field, value, ...  Sets the fields of a job's Batch API phase while the job is active;
# 1 when it did.
_SET_PHASE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS[1] the job hash; ARGV[1] the poll's sequence number, ARGV[2] when the next is due.  1 when it was current.
_TAKE_POLL = """
if tonumber(redis.call('HGET', KEYS[1], 'poll_seq') or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'poll_seq', tonumber(ARGV[1]) + 1, 'poll_due', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class JobStatus:
    id: str
    project: str | None
    model_version: str
    state: JobState
    total: int
    done: int
    failed: int
    pushed: int
    errors: list[dict[str, Any]]
    created_at: float
    finished_at: float | None
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0  # of tokens_in, those billed at the cached price
    cost_usd: float | None = None  # what the job cost: Batch API requests at the batch price
    live_cost_usd: float | None = None  # the same tokens at the live price
    mode: str = "live"  # "batch_api" once the job's requests went to the provider's Batch API
    batches: list[dict[str, Any]] = field(default_factory=list)  # the provider's batches: id, state, counts
    priority: int = 1  # its share of the workers' windows against the other jobs running
    max_usd: float | None = None  # its budget: it pauses before exceeding it
    message: str | None = None  # why it is paused

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "model_version": self.model_version,
            "state": self.state.value,
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
            "tokens_cached": self.tokens_cached,
            "cost_usd": self.cost_usd,
            "live_cost_usd": self.live_cost_usd,
            "mode": self.mode,
            "batches": self.batches,
            "priority": self.priority,
            "max_usd": self.max_usd,
            "message": self.message,
        }


def is_job_id(text: str) -> bool:
    """What ``Jobs.create`` makes (32 lower-case hex digits): anything else names no job, and may name another
    of its keys (``<id>:done``)."""
    return len(text) == 32 and all(char in "0123456789abcdef" for char in text)


def _usage(record: dict[str, str], prefix: str) -> TokenUsage:
    return TokenUsage(*(int(record.get(f"{prefix}tokens_{name}", 0)) for name in ("in", "out", "cached")))


T = TypeVar("T")


def chunked(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Jobs:
    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> Jobs:
        return cls(
            store,
            settings.job_ttl,
            settings.prices,
            settings.handover_grace,
            settings.llm_batch_discount,
            settings.job_queued_chunks,
            settings.job_errors_kept,
        )

    def __init__(
        self,
        store: Store,
        ttl: int,
        prices: dict[str, Price] | None = None,
        handover_grace: float = 10.0,
        batch_discount: float = 0.5,
        queued_chunks: int = 2,
        errors_kept: int = setting_default("job_errors_kept"),
    ) -> None:
        self.store = store
        self.errors_kept = errors_kept  # JOB_ERRORS_KEPT: a job's latest task errors in its status
        self.queued_chunks = queued_chunks  # JOB_QUEUED_CHUNKS: each job's messages in the queue, per priority
        self.redis = store.redis
        self.ttl = ttl
        self.prices = prices or {}
        self.handover_grace = handover_grace
        self.batch_discount = batch_discount
        self._transition = self.redis.register_script(_TRANSITION)
        self._finish_chunk = self.redis.register_script(_FINISH_CHUNK)
        self._seal = self.redis.register_script(_SEAL)
        self._extend = self.redis.register_script(_EXTEND)
        self._take_poll = self.redis.register_script(_TAKE_POLL)
        self._drop_holder = self.redis.register_script(_DROP_HOLDER)
        self._set_phase = self.redis.register_script(_SET_PHASE)
        self._dispatch = self.redis.register_script(_DISPATCH)
        self._take_chunk = self.redis.register_script(_TAKE_CHUNK)
        self._pause = self.redis.register_script(_PAUSE)
        self._resume = self.redis.register_script(_RESUME)
        self._requeue = self.redis.register_script(_REQUEUE)

    def _job(self, job_id: str, *parts: str) -> str:
        return self.store.key("job", job_id, *parts)

    def ledger(self, project: str | None, model_version: str) -> Ledger:
        return Ledger(self.store, project, model_version, self.ttl, self.handover_grace)

    # --- creating -------------------------------------------------------------------------------
    def create(
        self,
        snapshot: JobSnapshot,
        task_ids: list[int],
        chunk_size: int,
        sealed: bool = True,
        priority: int = 1,
        max_usd: float | None = None,
    ) -> str:
        """Store a job and its task ids in one round trip; returns its id.

        Only ids: what the job predicts is the data Label Studio holds for them, read when a chunk runs.  A job
        created unsealed takes more tasks (``extend``) until it is ``seal``ed: it is never settled before.  Its
        ``priority`` is its share of the workers against other jobs; past ``max_usd`` spent it pauses."""
        job_id = uuid.uuid4().hex
        now = time.time()
        chunks = list(chunked(list(task_ids), chunk_size))
        project = snapshot.project or ""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(
            self._job(job_id),
            mapping={
                "id": job_id,
                "project": project,
                "model_version": snapshot.model_version,
                "model": snapshot.model,
                "state": JobState.QUEUED.value,
                "total": len(task_ids),
                "chunks": len(chunks),
                "dispatched": 0,
                "sealed": int(sealed),
                "priority": priority,
                **({"max_usd": max_usd} if max_usd else {}),
                "created_at": now,
                "extended_at": now,
                "snapshot": snapshot.model_dump_json(),
            },
        )
        pipe.expire(self._job(job_id), self.ttl)
        for index, chunk in enumerate(chunks):
            pipe.set(self._job(job_id, "chunk", str(index)), json.dumps(chunk), ex=self.ttl)
        for index_key in (self.store.key("jobs"), *([self.store.key("project", project, "jobs")] if project else [])):
            pipe.zadd(index_key, {job_id: now})
            pipe.zremrangebyscore(index_key, 0, now - self.ttl)  # jobs expired by now: the index stays bounded
        pipe.execute()
        return job_id

    def extend(self, job_id: str, task_ids: list[int], chunk_size: int) -> bool:
        """Append tasks to an unsealed job, as new chunks (dispatched by the job's next ``dispatch_job``); False
        when the job takes no more: sealed, cancelled or failed."""
        chunks = [json.dumps(chunk) for chunk in chunked(list(task_ids), chunk_size)]
        args: list[str | float] = [time.time(), self.ttl, self._job(job_id, "chunk", ""), len(task_ids), *chunks]
        return int(self._extend(keys=[self._job(job_id)], args=args)) >= 0

    def seal(self, job_id: str) -> JobState | None:
        """No more tasks come to this job: it settles once its chunks are finished (now, if they are)."""
        keys = [
            self._job(job_id),
            self._job(job_id, "chunks_done"),
            self._job(job_id, "done"),
            self._job(job_id, "failed"),
        ]
        state = self._seal(keys=keys, args=[time.time()])
        return JobState(state) if state else None

    def sealed(self, job_id: str) -> bool:
        """Whether the job has all its tasks (a job created before unsealed jobs existed has no field: sealed)."""
        return text(self.redis.hget(self._job(job_id), "sealed")) != "0"

    def extended_at(self, job_id: str) -> float:
        """When tasks were last added to the job (else when it was created)."""
        return float(self.redis.hget(self._job(job_id), "extended_at") or 0)

    # --- reading --------------------------------------------------------------------------------
    def snapshot(self, job_id: str) -> JobSnapshot | None:
        raw = self.redis.hget(self._job(job_id), "snapshot")
        return JobSnapshot.model_validate_json(raw) if raw else None

    def chunk_count(self, job_id: str) -> int:
        return int(self.redis.hget(self._job(job_id), "chunks") or 0)

    def chunk_task_ids(self, job_id: str, index: int) -> list[int] | None:
        raw = self.redis.get(self._job(job_id, "chunk", str(index)))
        return json.loads(raw) if raw else None

    def status(self, job_id: str) -> JobStatus | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self._job(job_id))
        for name in ("done", "failed", "pushed"):
            pipe.scard(self._job(job_id, name))
        pipe.lrange(self._job(job_id, "errors"), 0, -1)
        pipe.hgetall(self._job(job_id, "batches"))
        record, done, failed, pushed, errors, batches = pipe.execute()
        if not record:
            return None
        usage = _usage(record, "")
        model = record.get("model", "")
        return JobStatus(
            id=job_id,
            project=record.get("project") or None,
            model_version=record["model_version"],
            state=JobState(record["state"]),
            total=int(record["total"]),
            done=done,
            failed=failed,
            pushed=pushed,
            errors=[json.loads(error) for error in errors],
            created_at=float(record["created_at"]),
            finished_at=float(record["finished_at"]) if record.get("finished_at") else None,
            model=model,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            tokens_cached=usage.cached,
            cost_usd=self._cost(record),
            live_cost_usd=usage_cost(self.prices.get(model), usage),
            mode="batch_api" if record.get("batch_phase") else "live",
            batches=[{"id": batch_id, **json.loads(state)} for batch_id, state in sorted(batches.items())],
            priority=int(record.get("priority") or 1),
            max_usd=float(record["max_usd"]) if record.get("max_usd") else None,
            message=record.get("message") or None,
        )

    def _cost(self, record: dict[str, str]) -> float | None:
        """What the job's tokens cost (Batch API requests at the batch price); None for a model without a price."""
        usage, batch_usage = _usage(record, ""), _usage(record, "batch_")
        price = self.prices.get(record.get("model", ""))
        live_part, batch_part = (
            usage_cost(price, usage - batch_usage),
            usage_cost(price, batch_usage, self.batch_discount),
        )
        return None if live_part is None or batch_part is None else round(live_part + batch_part, 6)

    def recent_ids(self, project: str | None = None, limit: int = 50) -> list[str]:
        index = self.store.key("project", project, "jobs") if project else self.store.key("jobs")
        return text_list(self.redis.zrevrange(index, 0, limit - 1))

    def recent(self, project: str | None = None, limit: int = 50) -> list[JobStatus]:
        statuses = (self.status(job_id) for job_id in self.recent_ids(project, limit))
        return [status for status in statuses if status is not None]

    def count_by_state(self, limit: int) -> dict[JobState, int]:
        """How many of the last ``limit`` jobs are in each state (for ``/metrics``)."""
        job_ids = self.recent_ids(None, limit)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self._job(job_id), "state")
        counts = dict.fromkeys(JobState, 0)
        for state in pipe.execute() if job_ids else []:
            if state:
                counts[JobState(state)] += 1
        return counts

    def state(self, job_id: str) -> JobState | None:
        state = text(self.redis.hget(self._job(job_id), "state"))
        return JobState(state) if state else None

    def activity(self, job_id: str) -> tuple[JobState | None, float]:
        """The job's state and when a chunk of it last started or finished (else when it was created)."""
        return self._activities([job_id])[0]

    def _activities(self, job_ids: list[str]) -> list[tuple[JobState | None, float]]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(self._job(job_id), "state", "progress_at", "created_at")
        return [
            ((JobState(state) if state else None), float(progress or created or 0))
            for state, progress, created in (pipe.execute() if job_ids else [])
        ]

    def active_count(self, project: str, limit: int = 1000) -> int:
        """How many of the project's latest ``limit`` jobs are queued, running or paused
        (MAX_ACTIVE_JOBS_PER_PROJECT).  Not a setting: a live job buried under ``limit`` newer ones of its project
        is not counted, which only loosens that limit."""
        return sum(state in LIVE_STATES for state, _ in self._activities(self.recent_ids(project, limit)))

    def backlog(self, limit: int = setting_default("metrics_recent_jobs")) -> Backlog:
        """The tasks still to predict, from the job records of the latest ``limit`` jobs, never from the broker's
        list: chunk messages sent again while Label Studio is away, or held back by a dispatcher, change nothing.

        A job counts while it is live (queued or running: a paused or finished one does not) and not waiting for
        its Batch API answers (the provider works on those).  Its tasks to predict are those neither done
        (predicted: waiting for Label Studio or in it) nor failed; of those, the calls the workers have open are
        in flight, the rest waiting.  A chunk's answers count as done once its last call answered, so up to a
        chunk per worker process is counted as waiting while it is in fact answered."""
        job_ids = self.recent_ids(None, limit)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(self._job(job_id), "state", "batch_phase", "total")
            for name in ("done", "failed", "pushed"):
                pipe.scard(self._job(job_id, name))
        replies = pipe.execute() if job_ids else []
        to_predict = for_label_studio = 0
        for offset in range(0, len(replies), 4):
            (state, phase, total), done, failed, pushed = replies[offset : offset + 4]
            if state not in ACTIVE_STATES or phase in WAITING_FOR_BATCHES:
                continue
            to_predict += max(0, int(total or 0) - done - failed)
            for_label_studio += max(0, done - pushed)
        in_flight = self.in_flight()
        return Backlog(max(0, to_predict - in_flight), in_flight, for_label_studio)

    def report_in_flight(self, process: str, calls: int, seconds: float) -> None:
        """A worker process's LLM calls open now; the report holds for ``seconds`` (a process that died stops
        counting then)."""
        self.redis.hset(self.store.key("workers", "in-flight"), process, f"{calls} {time.time() + seconds}")

    def forget_in_flight(self, process: str) -> None:
        """A worker process stopped: it has no calls open."""
        self.redis.hdel(self.store.key("workers", "in-flight"), process)

    def in_flight(self) -> int:
        """The LLM calls open in every worker process (reports that lapsed are dropped)."""
        key = self.store.key("workers", "in-flight")
        now, total, lapsed = time.time(), 0, []
        for process, report in text_dict(self.redis.hgetall(key)).items():
            calls, until = report.split()
            if float(until) < now:
                lapsed.append(process)
            else:
                total += int(calls)
        if lapsed:
            self.redis.hdel(key, *lapsed)
        return total

    def unfinished_chunks(self, job_id: str) -> list[int]:
        finished = {int(index) for index in self.redis.smembers(self._job(job_id, "chunks_done"))}
        return [index for index in range(self.chunk_count(job_id)) if index not in finished]

    # --- state changes: one atomic step each ----------------------------------------------------
    def _move(self, job_id: str, to: JobState, allowed_from: Iterable[JobState]) -> JobState | None:
        final = "1" if to.finished else "0"
        state = self._transition(
            keys=[self._job(job_id)], args=[to.value, time.time(), final, *(s.value for s in allowed_from)]
        )
        return JobState(state) if state else None

    def mark_running(self, job_id: str) -> JobState | None:
        """A chunk starts: a queued job becomes running; any other state stays (a cancelled job stays cancelled)."""
        self.redis.hsetnx(self._job(job_id), "started_at", time.time())
        return self._move(job_id, JobState.RUNNING, [JobState.QUEUED, JobState.RUNNING])

    def cancel(self, job_id: str) -> JobStatus | None:
        """Stop a job (a paused one too): chunks not started yet do nothing when they come (their task data is
        deleted now); running ones finish."""
        if self._move(job_id, JobState.CANCELLED, LIVE_STATES) == JobState.CANCELLED:
            self.drop_task_data(job_id)
        return self.status(job_id)

    def abort(self, job_id: str, message: str) -> None:
        """A job that cannot run at all: failed, with the reason as its error, and its task data deleted."""
        self._move(job_id, JobState.FAILED, LIVE_STATES)
        self.record_error(job_id, None, message)
        self.drop_task_data(job_id)

    def drop_task_data(self, job_id: str) -> None:
        """Delete the tasks of every chunk of a job that will run no more chunks: a finished chunk's go as it
        finishes, but a cancelled or failed job's unstarted chunks kept theirs for JOB_TTL."""
        keys = [self._job(job_id, "chunk", str(index)) for index in range(self.chunk_count(job_id))]
        for some in chunked(keys, 1000):
            self.redis.delete(*some)

    def finish_chunk(self, job_id: str, index: int) -> JobState | None:
        """Mark a chunk finished (its data is no longer needed); the last one settles the job's state."""
        keys = [
            self._job(job_id),
            self._job(job_id, "chunks_done"),
            self._job(job_id, "done"),
            self._job(job_id, "failed"),
            self._job(job_id, "chunk", str(index)),
            self._job(job_id, "holders"),
        ]
        state = self._finish_chunk(keys=keys, args=[time.time(), index, self.ttl])
        return JobState(state) if state else None

    def pause(self, job_id: str, reason: str) -> JobStatus | None:
        """Pause an active job with ``reason`` (shown in its status): its tasks not asked yet wait, its chunk
        messages taken meanwhile are parked (``take_chunk``), and none of its chunks is queued until ``resume``.
        A job in another state is left as it is."""
        self._pause(keys=[self._job(job_id)], args=[time.time(), reason])
        return self.status(job_id)

    def resume(self, job_id: str, max_usd: float | None = None) -> tuple[JobState | None, list[int]]:
        """Resume a paused job, with a new budget when given: (its state afterwards, the chunks to send now: the
        parked ones and its next ones).  A job not paused is left as it is, with nothing to send."""
        keys = [self._job(job_id), self._job(job_id, "queued"), self._job(job_id, "parked")]
        answer = self._resume(
            keys=keys, args=[self.queued_chunks, self.ttl, time.time(), "" if max_usd is None else max_usd]
        )
        state = text(answer[0]) or ""
        if len(answer) == 1:
            return (JobState(state) if state else None), []
        parked = sorted(int(index) for index in answer[3:])
        return JobState(state), [*parked, *range(int(answer[1]), int(answer[2]))]

    def admit_call(self, job_id: str) -> None:
        """Before a job's task is asked of the LLM: raise JobPaused when the job is paused, or when one more call
        (as much as its calls so far cost on average) would take it past its budget, which pauses it.  Calls in
        flight by then still finish (a job may end up to those calls over its budget); a model without a price
        is not counted."""
        record = self._fields(job_id, ["state", "message", "max_usd", *SPEND_FIELDS])
        if record.get("state") == JobState.PAUSED:
            raise JobPaused(f"job {job_id} is paused: {record.get('message') or 'paused'}")
        budget = float(record.get("max_usd") or 0)
        if budget and (spent := self._spent_past(record, budget)) is not None:
            reason = (
                f"budget reached: spent ${spent:.4f} of ${budget:.4f} after {record.get('calls') or 0} LLM calls; "
                f"resume it with a higher budget: llm-backend jobs resume {job_id} --max-usd <usd>, or POST "
                f"/jobs/{job_id}/resume?project=<id>&max_usd=<usd>"
            )
            self.pause(job_id, reason)
            raise JobPaused(f"job {job_id} is paused: {reason}")

    def spent_past(self, job_id: str, budget: float) -> float | None:
        """What the job spent, when one more call (as much as its calls so far cost on average) would take it past
        ``budget``: the rule ``admit_call`` pauses it by, which a resume must satisfy too (a resume under it would
        be paused again by its first call).  None when it would not, or when its model has no price."""
        return self._spent_past(self._fields(job_id, SPEND_FIELDS), budget)

    def _fields(self, job_id: str, fields: list[str]) -> dict[str, str]:
        values = text_list(self.redis.hmget(self._job(job_id), fields))
        return {name: value for name, value in zip(fields, values, strict=True) if value is not None}

    def _spent_past(self, record: dict[str, str], budget: float) -> float | None:
        spent = self._cost(record)
        if spent is None:
            return None
        calls = int(record.get("calls") or 0)
        return spent if spent + (spent / calls if calls else 0.0) > budget else None

    # --- lazy dispatch: each job keeps a few chunks queued, refilled as workers take them --------
    def refill(self, job_id: str) -> range:
        """Queue the job's next chunks up to its quota (``JOB_QUEUED_CHUNKS`` x priority): the indices to send."""
        first, last = self._dispatch(keys=[self._job(job_id), self._job(job_id, "queued")], args=self._quota())
        return range(int(first), int(last))

    def take_chunk(self, job_id: str, index: int) -> range | None:
        """A worker took this chunk's message: the chunks to send in its place, or None when the job is paused
        (the chunk is parked, not to be run: ``resume`` sends it again)."""
        keys = [self._job(job_id), self._job(job_id, "queued"), self._job(job_id, "parked")]
        first, last = self._take_chunk(keys=keys, args=[*self._quota(), index])
        return None if int(first) < 0 else range(int(first), int(last))

    def requeue(self, job_id: str, indices: list[int]) -> range:
        """A stalled job's chunks sent again become its queued ones; returns the further chunks to send."""
        keys = [self._job(job_id), self._job(job_id, "queued")]
        first, last = self._requeue(keys=keys, args=[*self._quota(), *indices])
        return range(int(first), int(last))

    def _quota(self) -> list[int]:
        return [self.queued_chunks, self.ttl]

    def dispatched(self, job_id: str) -> int:
        """How many of the job's chunks were queued so far (chunks from this index on wait for ``refill``)."""
        return int(self.redis.hget(self._job(job_id), "dispatched") or 0)

    # --- progress -------------------------------------------------------------------------------

    def touch(self, job_id: str) -> None:
        self.redis.hset(self._job(job_id), "progress_at", time.time())

    # --- which worker holds which chunk: recovery in seconds after a worker dies ------------------
    def beat(self, node: str, seconds: float) -> None:
        """A worker says it is alive, for ``seconds``."""
        self.redis.set(self.store.key("worker", node), time.time(), ex=max(1, int(seconds)))

    def hold_chunk(self, job_id: str, index: int, node: str) -> None:
        """A worker took a chunk's message (to run it now, or later: a retry's countdown)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self._job(job_id, "holders"), str(index), node)
        pipe.expire(self._job(job_id, "holders"), self.ttl)
        pipe.execute()

    def orphaned_chunks(
        self, limit: int = setting_default("watchdog_recent_jobs"), gone: Callable[[str], bool] = lambda holder: False
    ) -> list[tuple[str, int, str]]:
        """Unfinished chunks of active jobs whose holder is gone: ``(job id, chunk index, holder)``.

        A holder is a worker node (it took the message) or one of its processes (``node#pid``: it works on
        the chunk, its message acknowledged); it is gone when its node stopped beating, or when ``gone``
        says so (the node's own watchdog knows which of its processes died).  Their messages come back only
        after the broker's visibility timeout, or never once acknowledged, so they are sent again instead."""
        recent = self.recent_ids(None, limit)
        job_ids = [
            job_id
            for job_id, (state, _) in zip(recent, self._activities(recent), strict=True)
            if state in ACTIVE_STATES
        ]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self._job(job_id, "holders"))
        holders = dict(zip(job_ids, pipe.execute() if job_ids else [], strict=True))
        nodes = sorted({holder.partition("#")[0] for held in holders.values() for holder in held.values()})
        alive = dict(
            zip(nodes, self.redis.mget([self.store.key("worker", n) for n in nodes]) if nodes else [], strict=True)
        )
        return [
            (job_id, int(index), holder)
            for job_id, held in holders.items()
            for index, holder in held.items()
            if alive.get(holder.partition("#")[0]) is None or gone(holder)
        ]

    def drop_holder(self, job_id: str, index: int, holder: str) -> None:
        """``holder`` gave the chunk back (a worker stopping): forget it as the chunk's holder, unless another took the
        chunk meanwhile (compare and delete, one step)."""
        self._drop_holder(keys=[self._job(job_id, "holders")], args=[str(index), holder])

    def release_orphan(self, job_id: str, index: int, node: str, seconds: float) -> bool:
        """Take over an orphaned chunk (one rescuer per chunk and period); False when someone else did."""
        if not self.redis.set(self._job(job_id, "rescue", str(index)), node, nx=True, ex=max(1, int(seconds))):
            return False
        self.drop_holder(job_id, index, node)
        return True

    def claim_rescue(self, job_id: str, seconds: float) -> bool:
        """Whether this caller may re-send a stalled job's chunks now (one rescuer per period)."""
        return bool(self.redis.set(self._job(job_id, "rescue"), "1", nx=True, ex=max(1, int(seconds))))

    def add(self, job_id: str, name: str, task_ids: Iterable[TaskId]) -> None:
        """Add tasks to the job's ``done``, ``failed`` or ``pushed`` set."""
        ids = [str(task_id) for task_id in task_ids]
        if ids:
            pipe = self.redis.pipeline(transaction=False)
            pipe.sadd(self._job(job_id, name), *ids)
            pipe.expire(self._job(job_id, name), self.ttl)
            pipe.execute()

    def members(self, job_id: str, name: str, task_ids: Sequence[TaskId]) -> list[bool]:
        return members(self.redis, self._job(job_id, name), task_ids)

    def add_usage(
        self, job_id: str, usage: TokenUsage, via_batch: bool = False, writes: Pipeline | None = None, calls: int = 1
    ) -> None:
        """Count tokens the provider reported, and its calls; those of Batch API requests also apart, priced at its
        discount."""
        with self.store.one_round_trip(writes) as pipe:
            pipe.hincrby(self._job(job_id), "calls", calls)
            for prefix in ("", "batch_") if via_batch else ("",):
                pipe.hincrby(self._job(job_id), f"{prefix}tokens_in", usage.tokens_in)
                pipe.hincrby(self._job(job_id), f"{prefix}tokens_out", usage.tokens_out)
                pipe.hincrby(self._job(job_id), f"{prefix}tokens_cached", usage.cached)

    # --- the provider's Batch API -----------------------------------------------------------------
    # A job sent through it has a ``batch_phase``: "submitting" (its files going up), "polling" (its batches
    # at the provider), then "collected" (their answers in the ledger: the chunks run, the rest live).
    # One chain of poll messages looks at its batches: each poll carries a sequence number and only the poll
    # that holds the current one goes on (``take_poll``), so a poll sent again by a watchdog and the original
    # coming back late never make two chains.
    def batch_phase(self, job_id: str) -> str | None:
        return text(self.redis.hget(self._job(job_id), "batch_phase"))

    def set_batch_phase(self, job_id: str, phase: str, **fields: str | float) -> bool:
        """Move an active job to ``phase``, in one step with checking that it is active; False (nothing changed)
        for a job cancelled or finished meanwhile."""
        mapping: dict[str, str | float] = {"batch_phase": phase, "progress_at": time.time(), **fields}
        pairs = [str(item) for field_value in mapping.items() for item in field_value]
        return bool(self._set_phase(keys=[self._job(job_id)], args=pairs))

    def batch_fields(self, job_id: str, *names: str) -> list[str | None]:
        return [text(value) for value in self.redis.hmget(self._job(job_id), list(names))]

    def take_poll(self, job_id: str, seq: int, due_in: float) -> bool:
        """Whether poll ``seq`` is the job's current one; if so the next (``seq + 1``) is due in ``due_in`` s."""
        taken = self._take_poll(keys=[self._job(job_id)], args=[seq, time.time() + due_in])
        return bool(taken)

    def postpone_poll(self, job_id: str, due_in: float) -> None:
        """A poll still at work (collecting a large batch): no watchdog should take it for lost yet."""
        self.redis.hset(self._job(job_id), "poll_due", time.time() + due_in)

    def poll_seq(self, job_id: str) -> int:
        return int(self.redis.hget(self._job(job_id), "poll_seq") or 0)

    def overdue_polls(
        self, grace: float, limit: int = setting_default("watchdog_recent_jobs")
    ) -> list[tuple[str, int]]:
        """Active jobs whose batches should have been looked at ``grace`` seconds ago: (job id, poll seq)."""
        job_ids = self.recent_ids(None, limit)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(self._job(job_id), "state", "batch_phase", "poll_due", "poll_seq")
        now = time.time()
        return [
            (job_id, int(seq or 0))
            for job_id, (state, phase, due, seq) in zip(job_ids, pipe.execute() if job_ids else [], strict=True)
            if state in ACTIVE_STATES and phase == "polling" and due and now - float(due) > grace
        ]

    def claim_collect(self, job_id: str, batch_id: str, seconds: int) -> bool:
        """One collector per finished batch at a time (the lock lapses if it dies)."""
        key = self._job(job_id, "collecting", batch_id)
        return bool(self.redis.set(key, "1", nx=True, ex=max(1, seconds)))

    def mark_collected(self, job_id: str, batch_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self._job(job_id, "collected"), batch_id)
        pipe.expire(self._job(job_id, "collected"), self.ttl)
        pipe.delete(self._job(job_id, "collecting", batch_id))
        pipe.execute()

    def collected(self, job_id: str) -> set[str]:
        return text_set(self.redis.smembers(self._job(job_id, "collected")))

    def record_batch(self, job_id: str, batch_id: str, state: dict[str, Any]) -> None:
        """Remember one provider batch of the job and what it last said (its status and counts)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self._job(job_id, "batches"), batch_id, json.dumps(state))
        pipe.expire(self._job(job_id, "batches"), self.ttl)
        pipe.hset(self._job(job_id), "progress_at", time.time())
        pipe.execute()

    def batches(self, job_id: str) -> dict[str, dict[str, Any]]:
        raw = text_dict(self.redis.hgetall(self._job(job_id, "batches")))
        return {batch_id: json.loads(state) for batch_id, state in raw.items()}

    def record_error(self, job_id: str, task_id: int | None, message: str) -> None:
        """Keep one of the job's last errors: a task's (its Label Studio id), or the whole job's (None)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(self._job(job_id, "errors"), json.dumps({"task": task_id, "error": redact(message)}))
        pipe.ltrim(self._job(job_id, "errors"), -self.errors_kept, -1)
        pipe.expire(self._job(job_id, "errors"), self.ttl)
        pipe.execute()
