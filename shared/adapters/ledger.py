"""The exactly-once ledger, in Redis: the one owner of the protocol by which a task's prediction reaches Label Studio.

**The invariant.** Per (project, model version), a task is asked of the LLM once, unless its answer was lost with a
process that died before the answer was kept, and its prediction is pushed to Label Studio once.

Every way a prediction of the backend's version reaches Label Studio goes through this ledger: a batch job's chunks
(``worker/chunks.py``) and the project's pusher (``worker/pusher.py``), the one-task ``/predict`` that Label Studio
sends when a task is opened and stores itself (``shared/opened_tasks.py``), the provider's Batch API answers
(``shared/batch_jobs.py``), and a worker that stops (the drain, ``worker/process.py``).  They use only the protocol
steps below; the keys (``ledger:<project>:<version>:*``) are this module's alone.

**The states of a task** (per project and model version), and the step that moves it:

1. *free*: nobody works on it.  ``claim`` → *claimed*: a lease (``SET NX`` with a TTL, ``BATCH_CLAIM_SECONDS``) kept
   alive while its owner works (``Claims``), so it lapses soon after the owner dies; only the holder of a claim asks
   the LLM, and only for a task neither ``pushed`` nor ``kept``.  ``Claims.release`` / ``Claims.let_go`` give it up
   (the drain hands back the tasks its window did not start this way).
2. *kept*: ``keep_answer`` stores the answer with the digest of the data it was made from (before the claim goes),
   and puts it in the *outbox* for the project's pusher.  A Batch API answer is kept out of the outbox
   (``queue=False``) until the job's chunk has checked it against Label Studio's data (``kept``) and queues it
   (``queue_push``).  A prediction made from other data than Label Studio's is never pushed
   (``made_from_other_data`` → ``drop_other_data``).
3. *on its way* (``pushing``, with the time it was marked): taken from the outbox by the pusher (``take_batch``), or
   handed to Label Studio as an opened task's answer (``hand_over`` a kept one, ``hand_over_new`` one made in the
   request).  These are one atomic step each, so a task handed over is never taken for a push, nor the reverse.
4. *push recorded*: ``record_push`` writes the call (its tasks, its owner, when to read it back) *before* it is sent,
   since an import is not idempotent.
5. *pushed*: ``settle_push`` once the call answered; the kept answer goes, the task stays ``pushed``.  When the
   outcome is unknown (a timeout, a lost connection, a 5xx, the pusher killed) the call is ``reconcile_later``'d
   and nothing else is sent for the project until the holder of the push lock has read back from Label Studio
   which of its tasks landed: ``settle_push(landed, not_landed)``, the others back to the outbox, answers kept.
   A task marked on its way for longer than ``HANDOVER_GRACE`` outside a recorded call (a hand-over Label Studio
   may have dropped, a crash) is read back by the chunk that meets it: ``reconcile(landed, missing)``.
   A prediction Label Studio refuses is dropped with the reason (``refuse``), which its chunk reports.

**Compare-and-set in one Lua step**: extending and releasing claims (only the owner's), taking and releasing the
push lock (only the holder's), ``hand_over``, ``hand_over_new`` and ``take_batch``.  ``record_push``,
``settle_push``, dropping predictions and a chunk's look at its tasks (``whereabouts``) are one ``MULTI`` each.
``want`` lets an opened task's request take the prediction a worker is making, rather than the pusher.

**Who takes which step**:

- a chunk (``worker/chunks.py``): ``pushed``, ``claim``, ``made_from_other_data`` / ``drop_other_data``, ``kept``,
  ``on_their_way`` / ``reconcile`` / ``queue_push``, ``keep_answer``, then ``whereabouts``, ``pusher_busy_until``
  and ``withdraw`` as it settles; on a drain ``Claims.let_go`` /
  ``Claims.release``;
- the pusher (``worker/pusher.py``): ``hold_push_lock``, ``outbox_size``, ``take_batch``, ``record_push``,
  ``settle_push`` / ``reconcile_later`` / ``put_back`` / ``refuse``, ``push_in_flight``, ``release_push_lock``;
- an opened task (``shared/opened_tasks.py``): ``hand_over``, ``claim``, ``want``, ``hand_over_new``;
- the Batch API path (``shared/batch_jobs.py``): ``pushed``, ``kept``, ``keep_answer(queue=False)``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from shared.adapters.replies import text, text_list, text_set
from shared.adapters.store import Store
from shared.domain.types import Prediction, TaskId

log = logging.getLogger(__name__)


def members(redis_client: redis.Redis, key: str, task_ids: Sequence[TaskId]) -> list[bool]:
    """Which of these tasks are in the set at ``key``, in one round trip."""
    if not task_ids:
        return []
    return [bool(flag) for flag in redis_client.smismember(key, [str(task_id) for task_id in task_ids])]


# KEYS: results hash, pushing hash, pushed set, digests hash.  ARGV: task id, now, the digest of the caller's data.
# Hands a task's waiting prediction to Label Studio (which stores what /predict answers): {'taken', prediction},
# or why not: 'pushed', 'pushing', 'none', or 'other' when what the ledger holds was made from other data.
_HAND_OVER = """
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return {'pushed'} end
local digest = redis.call('HGET', KEYS[4], ARGV[1])
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  if digest and digest ~= ARGV[3] then return {'other'} end
  return {'pushing'}
end
local prediction = redis.call('HGET', KEYS[1], ARGV[1])
if not prediction then return {'none'} end
if digest ~= ARGV[3] then return {'other'} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {'taken', prediction}
"""

# KEYS: results hash, pushing hash, pushed set, digests hash.  ARGV: task id, prediction, now, digest.  Records a
# prediction just given to Label Studio: 'recorded'; 'there' when the task's prediction is there, on its way or
# waiting for the pusher already; 'other' when what is on its way was made from other data.
_HAND_OVER_NEW = """
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return 'there' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  local digest = redis.call('HGET', KEYS[4], ARGV[1])
  if digest and digest ~= ARGV[4] then return 'other' end
  return 'there'
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 'recorded'
"""


# KEYS: results hash, pushing hash, pushed set, outbox set, wanted hash.  ARGV: now, count.  Takes up to
# ``count`` tasks out of the outbox and marks as being pushed those neither pushed nor on their way already;
# a task an opened task's request waits for (``wanted`` until a time still to come) goes back to the outbox,
# for that request to take.
_TAKE_FOR_PUSH = """
local taken = redis.call('SPOP', KEYS[4], tonumber(ARGV[2]))
local marked = {}
for _, task in ipairs(taken) do
  if redis.call('SISMEMBER', KEYS[3], task) == 0 and redis.call('HEXISTS', KEYS[2], task) == 0 then
    local until_ = tonumber(redis.call('HGET', KEYS[5], task) or '0')
    if until_ > tonumber(ARGV[1]) then
      redis.call('SADD', KEYS[4], task)
    else
      redis.call('HSET', KEYS[2], task, ARGV[1])
      table.insert(marked, task)
    end
  end
end
return marked
"""

# KEYS: the push lock.  ARGV: owner, milliseconds.  Takes the lock, or keeps it when it is the owner's already.
_HOLD_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
"""


# KEYS: the push lock.  ARGV: owner.  Drops the lock only when the owner holds it (a lock that lapsed and was
# taken by another pusher stays theirs).
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: task claims.  ARGV: owner, seconds (0: release).  Extends (or drops) each claim the owner still holds, in
# one step with reading its holder: a claim that lapsed and was taken over meanwhile stays its new owner's.
_KEEP_CLAIMS = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    if ARGV[2] == '0' then redis.call('DEL', key) else redis.call('EXPIRE', key, tonumber(ARGV[2])) end
  end
end
return 0
"""


@dataclass(frozen=True)
class PushInFlight:
    """An ``import/predictions`` call whose outcome is not known yet: sent by ``owner`` with ``tasks``, to be read
    back from Label Studio (which of its tasks hold the prediction) from ``reconcile_at`` (epoch seconds) on."""

    owner: str
    reconcile_at: float
    tasks: list[str]


@dataclass(frozen=True)
class Whereabouts:
    """Where a chunk's tasks are (``Ledger.whereabouts``): ``pushed``, ``refused`` (with Label Studio's reason), or
    still ``coming`` (in the outbox, or on their way and expected to land); a task in none of them is lost."""

    pushed: list[str]
    refused: dict[str, str]
    coming: list[str]


class Claims:
    """The tasks ``claim`` gave one owner (``held``; ``busy``: those someone else holds, until ``busy_until`` at the
    latest should their holder have died).  Used as a context manager (or ``keep_alive`` … ``release``), it keeps
    them alive while its owner works, so they lapse soon after it dies, and releases them at the end."""

    def __init__(
        self,
        ledger: Ledger,
        held: list[TaskId],
        busy: list[TaskId],
        owner: str,
        seconds: int,
        busy_until: float | None = None,
    ) -> None:
        self.held, self.busy, self.busy_until = held, busy, busy_until
        self._ledger, self._owner, self._seconds = ledger, owner, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="claim-keeper")

    def _beat(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                self.renew()
            except Exception:  # a Redis blip: the next beat tries again
                log.warning("could not extend task claims", exc_info=True)

    def renew(self) -> None:
        """Extend the claims still held (a claim that lapsed and was taken over is left alone): one beat."""
        self._ledger._keep_claims_of(self.held, self._owner, max(1, self._seconds))

    def keep_alive(self) -> Claims:
        self._thread.start()
        return self

    def __enter__(self) -> Claims:
        return self.keep_alive()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Stop keeping them alive and give them up (only ours: a claim taken over stays its new owner's)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._ledger._keep_claims_of(self.held, self._owner, 0)

    def let_go(self, task_ids: Collection[TaskId]) -> None:
        """Give up some of them now (tasks handed back unstarted: a worker stopping); the others are kept as
        before."""
        gone = {str(task_id) for task_id in task_ids}
        self.held = [task_id for task_id in self.held if str(task_id) not in gone]
        self._ledger._keep_claims_of(task_ids, self._owner, 0)


class Ledger:
    """The exactly-once protocol for one (project, model version): the steps of the module's docstring."""

    def __init__(
        self, store: Store, project: str | None, model_version: str, ttl: int, handover_grace: float = 10.0
    ) -> None:
        self.redis = store.redis
        self.store = store
        self.project = project or "-"
        self.version = model_version
        self.ttl = ttl
        self.handover_grace = handover_grace
        self._hand_over = self.redis.register_script(_HAND_OVER)
        self._hand_over_new = self.redis.register_script(_HAND_OVER_NEW)
        self._hold_lock = self.redis.register_script(_HOLD_LOCK)
        self._release_lock = self.redis.register_script(_RELEASE_LOCK)
        self._take_for_push = self.redis.register_script(_TAKE_FOR_PUSH)
        self._keep_claims = self.redis.register_script(_KEEP_CLAIMS)

    def _key(self, *parts: str) -> str:
        return self.store.key("ledger", self.project, self.version, *parts)

    # --- reading ------------------------------------------------------------------------------------
    def pushed(self, task_ids: Sequence[TaskId]) -> list[bool]:
        """Which of these tasks Label Studio holds a prediction of this version of, as far as the ledger knows."""
        return members(self.redis, self._key("pushed"), task_ids)

    def kept(self, digests: Mapping[int, str]) -> dict[str, Prediction]:
        """Predictions made earlier and not pushed yet, of these tasks (id → digest of the data they hold now):
        only those made from that same data."""
        if not digests:
            return {}
        ids = [str(task_id) for task_id in digests]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self._key("results"), ids)
        pipe.hmget(self._key("digests"), ids)
        raw, kept_digests = pipe.execute()
        return {
            task_id: json.loads(value)
            for task_id, value, digest, wanted in zip(ids, raw, kept_digests, digests.values(), strict=True)
            if value and digest == wanted
        }

    def made_from_other_data(self, digests: Mapping[int, str]) -> tuple[list[str], list[str]]:
        """Of these tasks (id → digest of the data Label Studio holds), those whose waiting or handed-over
        prediction was made from other data (a caller's own data for that task id, or the task's data before it
        changed), and of them those on their way to Label Studio (handed over: Label Studio may hold it).  Such a
        prediction is never pushed: check Label Studio for the handed-over ones, then ``drop_other_data``."""
        if not digests:
            return [], []
        ids = [str(task_id) for task_id in digests]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self._key("results"), ids)
        pipe.hmget(self._key("pushing"), ids)
        pipe.hmget(self._key("digests"), ids)
        results, pushing, kept_digests = pipe.execute()
        foreign = [
            task_id
            for task_id, result, mark, digest, wanted in zip(
                ids, results, pushing, kept_digests, digests.values(), strict=True
            )
            if (result or mark) and digest != wanted
        ]
        if not foreign:
            return [], []
        recent, overdue = self.on_their_way(foreign)
        return foreign, [*recent, *overdue]

    def on_their_way(self, task_ids: Sequence[TaskId]) -> tuple[list[str], list[str]]:
        """Of these tasks, those on their way to Label Studio: (still within the handover grace, overdue).

        An overdue one was pushed or handed over long enough ago that Label Studio has it, unless the push
        was lost (a crash): read Label Studio, then ``reconcile``, before pushing it again.  The tasks of a recorded
        call count as recent: the pusher reads them back itself.
        """
        if not task_ids:
            return [], []
        pipe = self.redis.pipeline(transaction=True)
        pipe.hmget(self._key("pushing"), [str(t) for t in task_ids])
        pipe.smismember(self._key("in-flight"), [str(t) for t in task_ids])
        marks, flying = pipe.execute()
        recent: list[str] = []
        overdue: list[str] = []
        for task_id, at, in_flight in zip(task_ids, marks, flying, strict=True):
            if at:
                (recent if self._fresh(at, in_flight) else overdue).append(str(task_id))
        return recent, overdue

    def _fresh(self, marked_at: str, in_flight: int) -> bool:
        """Whether a task marked on its way at ``marked_at`` is still expected to land by itself."""
        return bool(in_flight) or time.time() - float(marked_at) < self.handover_grace

    def whereabouts(self, task_ids: Sequence[str]) -> Whereabouts:
        """Where these tasks are, read in one step (``MULTI``): a task moves from the outbox to on its way to pushed
        while its chunk looks, and read in several steps it could be seen nowhere (its chunk then gave up on a task
        that was landing)."""
        ids = list(task_ids)
        if not ids:
            return Whereabouts([], {}, [])
        pipe = self.redis.pipeline(transaction=True)
        pipe.smismember(self._key("pushed"), ids)
        pipe.hmget(self._key("refused"), ids)
        pipe.smismember(self._key("outbox"), ids)
        pipe.hmget(self._key("pushing"), ids)
        pipe.smismember(self._key("in-flight"), ids)
        pushed, refused, outbox, marks, flying = pipe.execute()
        seen = Whereabouts([], {}, [])
        for task_id, landed, reason, waiting, at, in_flight in zip(
            ids, pushed, text_list(refused), outbox, marks, flying, strict=True
        ):
            if landed:
                seen.pushed.append(task_id)
            elif reason:
                seen.refused[task_id] = reason
            elif waiting or (at and self._fresh(at, in_flight)):
                seen.coming.append(task_id)
        return seen

    def outbox_size(self) -> int:
        return int(self.redis.scard(self._key("outbox")))

    def pusher_busy_until(self) -> float:
        """Until when (epoch seconds) the project's pusher is known to make progress: the last time a call landed,
        or the read timeout of the call in flight (until it ends).  A chunk whose
        tasks wait in the outbox keeps waiting while this is recent: the outbox is drawn at random (``SPOP``), so
        in a backlog of several calls' worth a task may wait many calls while every call lands."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self._key("landed-at"))
        pipe.hget(self._key("in-flight-call"), "answer_by")
        return max((float(value) for value in pipe.execute() if value is not None), default=0.0)

    def push_in_flight(self) -> PushInFlight | None:
        """The call recorded by ``record_push`` and not settled yet, if any (one round trip: the loop asks every
        tick)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self._key("in-flight-call"))
        pipe.smembers(self._key("in-flight"))
        call, tasks = pipe.execute()
        if not call:
            return None
        return PushInFlight(text(call["owner"]) or "", float(call["reconcile_at"]), sorted(text_set(tasks), key=int))

    # --- 1. asking the LLM once: claims -------------------------------------------------------------
    def claim(self, task_ids: Sequence[TaskId], owner: str, seconds: int) -> Claims:
        """Claim tasks for ``owner`` for ``seconds`` (kept alive by the returned ``Claims`` while in use)."""
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.set(self._key("claim", str(task_id)), owner, nx=True, ex=seconds)
        flags = pipe.execute()
        held = [task_id for task_id, ok in zip(task_ids, flags, strict=True) if ok]
        busy = [task_id for task_id, ok in zip(task_ids, flags, strict=True) if not ok]
        return Claims(self, held, busy, owner, seconds, self._lapse_of_claims(busy))

    def _lapse_of_claims(self, task_ids: Sequence[TaskId]) -> float | None:
        """When (epoch seconds) the last of these tasks' claims lapses unless its holder renews it: the holder may
        have died, and the tasks are free then."""
        if not task_ids:
            return None
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.pttl(self._key("claim", str(task_id)))
        milliseconds: list[int] = pipe.execute()  # -2: lapsed since the claim was tried
        return time.time() + max(0, *milliseconds) / 1000

    def _keep_claims_of(self, task_ids: Collection[TaskId], owner: str, seconds: int) -> None:
        """Extend (``seconds``) or drop (0) the claims ``owner`` still holds, compare-and-set in one step."""
        if task_ids:
            self._keep_claims(keys=[self._key("claim", str(t)) for t in task_ids], args=[owner, seconds])

    # --- 2. keeping the answer ----------------------------------------------------------------------
    def keep_answer(self, task_id: TaskId, prediction: Prediction, digest: str, queue: bool = True) -> None:
        """An answer made from data with this digest, kept until it is pushed, and put in the outbox for the next
        push in the same round trip.  ``queue=False`` keeps it out of the outbox: a Batch API answer, which the
        job's chunk checks against the data Label Studio holds (``kept``) before it queues it (``queue_push``)."""
        pipe = self.redis.pipeline(transaction=False)
        for name, value in (("results", json.dumps(prediction)), ("digests", digest)):
            pipe.hset(self._key(name), str(task_id), value)
            pipe.expire(self._key(name), self.ttl)
        if queue:
            pipe.sadd(self._key("outbox"), str(task_id))
            pipe.expire(self._key("outbox"), self.ttl)
        pipe.execute()

    def queue_push(self, task_ids: Iterable[TaskId]) -> None:
        """Put tasks whose answer is kept in the outbox, for the next push."""
        ids = [str(t) for t in task_ids]
        if ids:
            pipe = self.redis.pipeline(transaction=False)
            pipe.sadd(self._key("outbox"), *ids)
            pipe.expire(self._key("outbox"), self.ttl)
            pipe.execute()

    def withdraw(self, task_ids: Collection[TaskId]) -> None:
        """Take tasks out of the outbox (their chunk gave up on them)."""
        if task_ids:
            self.redis.srem(self._key("outbox"), *[str(t) for t in task_ids])

    # --- 3. an opened task: Label Studio stores what /predict answers -------------------------------
    def hand_over(self, task_id: TaskId, digest: str) -> tuple[str, dict[str, Any] | None]:
        """Give a task's waiting prediction to Label Studio, which stores what ``/predict`` answers, when it was
        made from the data the caller sent (``digest``).

        Returns ``("taken", prediction)``, or why not: ``"pushed"`` (Label Studio has one), ``"pushing"``
        (one is on its way), ``"none"`` (no prediction yet) or ``"other"`` (the ledger's was made from other
        data: the caller gets none of it).  Atomic with ``take_batch``, so a worker never pushes what Label
        Studio was handed.
        """
        answer = self._hand_over(keys=self._with_digests(), args=[str(task_id), time.time(), digest])
        state = answer[0]
        return state, (json.loads(answer[1]) if state == "taken" else None)

    def hand_over_new(self, task_id: TaskId, prediction: Prediction, digest: str) -> str:
        """Record a prediction, made from data with ``digest``, about to be given to Label Studio: ``"recorded"``;
        ``"there"`` when the task has one there, on its way or waiting (then give it none); ``"other"`` when
        the ledger's was made from other data (then the caller's prediction goes unrecorded).  A job that
        meets a recorded task later checks Label Studio for it (after ``HANDOVER_GRACE``) instead of asking
        the LLM again."""
        args: list[str | float] = [str(task_id), json.dumps(prediction), time.time(), digest]
        recorded = text(self._hand_over_new(keys=self._with_digests(), args=args))
        pipe = self.redis.pipeline(transaction=False)
        for name in ("results", "pushing", "digests"):
            pipe.expire(self._key(name), self.ttl)
        pipe.execute()
        return recorded or "there"

    def want(self, task_id: TaskId, seconds: float) -> None:
        """A request for an opened task waits for this task's prediction (to hand it to Label Studio itself):
        the pusher leaves it for ``seconds``."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self._key("wanted"), str(task_id), time.time() + seconds)
        pipe.expire(self._key("wanted"), self.ttl)
        pipe.execute()

    # --- 4. pushing: the project's pusher, holding its push lock --------------------------------------
    def hold_push_lock(self, owner: str, seconds: float) -> bool:
        """Take or keep the project's push lock for ``seconds``: one pusher per (project, version) at a time."""
        return bool(self._hold_lock(keys=[self._key("push-lock")], args=[owner, int(seconds * 1000)]))

    def release_push_lock(self, owner: str) -> None:
        """Drop the push lock if ``owner`` holds it, in one step (compare and delete)."""
        self._release_lock(keys=[self._key("push-lock")], args=[owner])

    def take_batch(self, count: int) -> dict[str, Prediction]:
        """Take up to ``count`` tasks out of the outbox, marked as on their way in one atomic step (two pushers never
        take the same task; one handed to Label Studio meanwhile is left out; one an opened task's request waits for
        stays in the outbox, ``want``), with their kept predictions.  A task whose prediction was dropped meanwhile
        (refused) is left out and unmarked."""
        keys = [*self._trio(), self._key("outbox"), self._key("wanted")]
        marked = list(self._take_for_push(keys=keys, args=[time.time(), count]))
        self.redis.expire(self._key("pushing"), self.ttl)
        if not marked:
            return {}
        raw = self.redis.hmget(self._key("results"), marked)
        batch = {task_id: json.loads(value) for task_id, value in zip(marked, raw, strict=True) if value}
        self._unmark([task_id for task_id in marked if task_id not in batch])
        return batch

    def put_back(self, task_ids: Collection[TaskId], to_outbox: bool = True) -> None:
        """Tasks taken for a push that did not happen (nothing of it reached Label Studio) are no longer on their
        way: back in the outbox, or, with ``to_outbox=False``, left for their chunk's next run (Label Studio is out of
        reach: the chunk says why)."""
        self._unmark(task_ids)
        if to_outbox:
            self.queue_push(task_ids)

    def record_push(self, owner: str, task_ids: Iterable[TaskId], reconcile_at: float, answer_by: float) -> None:
        """Record a call about to be sent: should its outcome stay unknown (a timeout, a lost connection, a 5xx,
        its pusher killed), whoever holds the push lock next reads back which of these tasks landed, from
        ``reconcile_at`` on, before anything is sent again.  Until ``answer_by`` (its read timeout) the pusher
        counts as making progress (``pusher_busy_until``)."""
        ids = [str(t) for t in task_ids]
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._key("in-flight"))
        pipe.sadd(self._key("in-flight"), *ids)
        pipe.hset(
            self._key("in-flight-call"), mapping={"owner": owner, "reconcile_at": reconcile_at, "answer_by": answer_by}
        )
        pipe.expire(self._key("in-flight"), self.ttl)
        pipe.expire(self._key("in-flight-call"), self.ttl)
        pipe.execute()

    def reconcile_later(self, reconcile_at: float) -> None:
        """The call is over and its outcome still unknown: read it back from ``reconcile_at`` on.  It no longer
        counts as the pusher's progress (``pusher_busy_until``)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key("in-flight-call"), "reconcile_at", reconcile_at)
        pipe.hdel(self._key("in-flight-call"), "answer_by")
        pipe.execute()

    def settle_push(self, landed: Collection[TaskId], not_landed: Collection[TaskId]) -> None:
        """The outcome of the call in flight is known (it answered, or was read back): ``landed`` are pushed,
        ``not_landed`` go back to the outbox (their predictions kept: no new LLM call), in one step."""
        pipe = self.redis.pipeline(transaction=True)
        if landed:
            ids = [str(t) for t in landed]
            pipe.sadd(self._key("pushed"), *ids)
            pipe.expire(self._key("pushed"), self.ttl)
            pipe.hdel(self._key("results"), *ids)
            pipe.hdel(self._key("pushing"), *ids)
            pipe.set(self._key("landed-at"), time.time(), ex=self.ttl)
        if not_landed:
            ids = [str(t) for t in not_landed]
            pipe.hdel(self._key("pushing"), *ids)
            pipe.sadd(self._key("outbox"), *ids)
            pipe.expire(self._key("outbox"), self.ttl)
        pipe.delete(self._key("in-flight"), self._key("in-flight-call"))
        pipe.execute()

    def refuse(self, task_id: TaskId, message: str) -> None:
        """Label Studio refused this task's prediction: drop it and say why, for the task's chunk to report."""
        self._forget([task_id])
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self._key("refused"), str(task_id), message)
        pipe.expire(self._key("refused"), self.ttl)
        pipe.execute()

    # --- 5. reconciling with what Label Studio holds (a chunk meeting old marks) ----------------------
    def reconcile(self, landed: Collection[TaskId], missing: Collection[TaskId]) -> None:
        """Tasks found on their way past the handover grace, read back from Label Studio: ``landed`` are pushed;
        ``missing`` never landed (a hand-over Label Studio dropped, a crash) and go back to the outbox, their
        predictions kept (no new LLM call)."""
        self._end_push(landed)
        self.put_back(missing)

    def drop_other_data(self, task_ids: Iterable[TaskId], there: Collection[int]) -> None:
        """Predictions made from other data (``made_from_other_data``) are never pushed: of ``task_ids``, those
        Label Studio holds a prediction of this version of (``there``: handed over) count as pushed, the others are
        dropped (their tasks are predicted again from Label Studio's data)."""
        if there:
            self._end_push(list(there))
        self._forget([task_id for task_id in task_ids if int(task_id) not in there])

    # --- the steps' parts ---------------------------------------------------------------------------
    def _trio(self) -> list[str]:
        return [self._key("results"), self._key("pushing"), self._key("pushed")]

    def _with_digests(self) -> list[str]:
        return [*self._trio(), self._key("digests")]

    def _unmark(self, task_ids: Collection[TaskId]) -> None:
        """No longer on its way: it may be pushed again."""
        if task_ids:
            self.redis.hdel(self._key("pushing"), *[str(t) for t in task_ids])

    def _forget(self, task_ids: Iterable[TaskId]) -> None:
        """Drop predictions that must not be pushed: Label Studio refused them, or they were made from other data."""
        ids = [str(t) for t in task_ids]
        if ids:
            pipe = self.redis.pipeline(transaction=True)
            for name in ("results", "pushing", "digests"):
                pipe.hdel(self._key(name), *ids)
            pipe.execute()

    def _end_push(self, task_ids: Iterable[TaskId]) -> None:
        """Record tasks as pushed and drop their waiting results."""
        ids = [str(t) for t in task_ids]
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(self._key("pushed"), *ids)
        pipe.expire(self._key("pushed"), self.ttl)
        for name in ("results", "pushing", "digests"):
            pipe.hdel(self._key(name), *ids)
        pipe.execute()
