"""One chunk of a batch job: its tasks predicted in the process's LLM window and pushed by the pusher, once.

Celery delivers a chunk at least once (``acks_late``, redelivery after a lost worker); this module
makes the effect exactly once per (project, task, model version), by the steps of the ledger's protocol
(``shared/adapters/ledger.py``, which states it):

1. tasks the ledger says are in Label Studio already are done;
2. the others are claimed (a short-lived Redis lock, kept alive while we work), so a second delivery
   of the same chunk running at the same time leaves them alone and comes back later;
3. their data is read from Label Studio (the job keeps ids only): what is predicted and pushed is what Label
   Studio holds, never what a caller of ``/predict`` sent;
4. a prediction made earlier from that same data and not pushed yet is reused, so the LLM is asked once per
   task; one made from other data is dropped, never pushed;
5. predictions go to the ledger's outbox, which the project's pusher (``worker/pusher.py``) flushes in
   few large calls; a call whose outcome is unknown (a timeout, a crash mid-call) is read back by the pusher
   before anything is sent again, and its tasks count as on their way meanwhile.  A task left "pushing"
   otherwise — handed to Label Studio as the answer to a task opened in the labeling screen — is checked
   against Label Studio (once ``HANDOVER_GRACE`` seconds have passed) before being pushed again.

``start`` hands the chunk's tasks to the window and returns a ``PendingChunk``; the Celery task returns
once they are all in flight, so the next chunk's tasks queue behind them (``worker/window.py``).  A
``ChunkTracker`` thread ``settle``s pending chunks as their tasks are pushed: only then is the chunk
finished (or sent again for the tasks still open), so a worker that dies meanwhile loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.jobs import WAITING_FOR_BATCHES, Jobs, JobState
from shared.adapters.ledger import Claims, Ledger
from shared.domain.backoff import backoff
from shared.domain.config import Settings
from shared.domain.errors import InvalidInput, JobPaused, LabelStudioError, LLMError, TaskError
from shared.domain.routing import WayIn
from shared.domain.types import Prediction, TaskId, data_digest
from shared.predictor import Predictor
from shared.projects import PredictionContext, Projects
from shared.routing import route
from worker.pusher import Pusher
from worker.window import LLMWindow

log = logging.getLogger(__name__)

LAPSE_MARGIN = 1.0  # a chunk waiting for another process's claims or read-back runs again this long after it lapses


@dataclass
class ChunkOutcome:
    """What a run of a chunk achieved; ``retry_in`` is set when some of its tasks are still open."""

    predicted: int = 0
    pushed: int = 0
    failed: int = 0
    waiting: list[TaskId] = field(default_factory=list)
    retry_in: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)  # the window's threads


@dataclass
class PendingChunk:
    """A chunk whose tasks are in the window or the outbox: what ``settle`` needs to finish it."""

    job_id: str
    index: int
    attempt: int
    ctx: PredictionContext
    ledger: Ledger
    last_attempt: bool
    claims: Claims  # the tasks this run asks the LLM for, kept alive until their answers are kept
    outcome: ChunkOutcome = field(default_factory=ChunkOutcome)
    calls: list[Future[None]] = field(default_factory=list)
    predicting: list[int] = field(default_factory=list)  # the task of each call
    holder: str | None = None  # who holds the chunk in the job's records (``Jobs.hold_chunk``)
    sent_again: bool = False  # handed back by a stopping worker: its next run finishes it
    queued: list[str] = field(default_factory=list)  # tasks in the outbox, or on their way from it
    predicted_at: float | None = None
    claims_released: bool = False
    free_at: float | None = None  # when what its waiting tasks wait for lapses (epoch seconds): see ``_retry_in``
    # answers Redis did not take yet, with the digest of their data: kept, retried
    unrecorded: dict[str, tuple[Prediction, str]] = field(default_factory=dict)

    def free_by(self, at: float | None) -> None:
        """Some waiting tasks wait for another process until ``at`` (epoch seconds) at the latest: its claims lapse,
        or its push may be read back, then."""
        if at is not None:
            self.free_at = at if self.free_at is None else min(self.free_at, at)

    def predictions_done(self) -> bool:
        return all(call.done() for call in self.calls)

    def not_started(self) -> list[int]:
        """Tasks the window handed back without calling the LLM (a worker stopping)."""
        return [task_id for task_id, call in zip(self.predicting, self.calls, strict=True) if call.cancelled()]


class ChunkRunner:
    def __init__(
        self,
        settings: Settings,
        projects: Projects,
        predictor: Predictor,
        jobs: Jobs,
        window: LLMWindow | None = None,
        pusher: Pusher | None = None,
    ) -> None:
        self.settings = settings
        self.projects = projects
        self.predictor = predictor
        self.jobs = jobs
        self.window = window or LLMWindow(settings.llm_concurrency)
        self.pusher = pusher or Pusher(predictor)

    def start(self, job_id: str, index: int, attempt: int, owner: str) -> PendingChunk | None:
        """Claim the chunk's open tasks and hand them to the window; None when there is nothing to do."""
        snapshot = self.jobs.snapshot(job_id)
        ids = self.jobs.chunk_task_ids(job_id, index) if snapshot else None
        if snapshot is None or ids is None:  # the job expired, or this is a late redelivery of a finished chunk
            log.info("job %s chunk %s: nothing left to do", job_id, index)
            return None
        if self.jobs.state(job_id) == JobState.CANCELLED:
            log.info("job %s chunk %s: the job was cancelled", job_id, index)
            self.jobs.finish_chunk(job_id, index)
            return None
        if self.jobs.batch_phase(job_id) in WAITING_FOR_BATCHES:  # sent early (a rescue): the poll sends it again
            log.info("job %s chunk %s: waits for the job's Batch API answers", job_id, index)
            return None
        self.jobs.mark_running(job_id)
        try:
            ctx = self.projects.from_snapshot(snapshot, job_id)
        except InvalidInput as exc:  # settings refused since the job was queued (the operator's rules): no retry helps
            log.warning("job %s chunk %s: its tasks fail: %s", job_id, index, exc)
            self.abandon(job_id, index, str(exc))
            return None
        ledger = self.jobs.ledger(ctx.project, ctx.model_version)
        last_attempt = attempt + 1 >= self.settings.batch_max_attempts

        in_label_studio = [task_id for task_id, pushed in zip(ids, ledger.pushed(ids), strict=True) if pushed]
        self.jobs.add(job_id, "done", in_label_studio)
        self.jobs.add(job_id, "pushed", in_label_studio)
        already = set(in_label_studio)
        open_ids = [task_id for task_id in ids if task_id not in already]
        failed_here = self.jobs.members(job_id, "failed", open_ids)
        open_ids = [task_id for task_id, failed in zip(open_ids, failed_here, strict=True) if not failed]

        claims = ledger.claim(open_ids, owner, self.settings.batch_claim_seconds)
        claimed = claims.held
        pending = PendingChunk(job_id, index, attempt, ctx, ledger, last_attempt, claims)
        pending.outcome.waiting.extend(claims.busy)
        pending.free_by(claims.busy_until)
        claims.keep_alive()
        try:
            decision = route(ctx, WayIn.JOB)
            if decision.refused:  # nothing could land (no Label Studio to push to): fail now, before any LLM call
                for task_id in claimed:
                    self._fail(job_id, task_id, decision.message, pending.outcome)
                return pending
            held = self._held_by_label_studio(pending, claimed)
            self.pusher.watch(ctx, ledger)
            digests = {task_id: data_digest(data) for task_id, data in held.items()}
            settled = self._drop_predictions_of_other_data(pending, digests)
            digests = {task_id: digest for task_id, digest in digests.items() if task_id not in settled}
            ready = ledger.kept(digests)
            self.jobs.add(job_id, "done", list(ready))
            self._queue(pending, list(ready))
            to_predict = self._not_pushed_meanwhile(
                pending, [task_id for task_id in digests if str(task_id) not in ready]
            )
            if to_predict:
                self._wait_while_backlog_is_full(ledger)
            pending.predicting = to_predict
            pending.calls = [
                self.window.submit(self._predictor_of(pending, task_id, held[task_id], digests[task_id]))
                for task_id in to_predict
            ]
        except BaseException:
            claims.release()
            raise
        return pending

    def _not_pushed_meanwhile(self, pending: PendingChunk, task_ids: list[int]) -> list[int]:
        """Of tasks neither pushed at the chunk's first read nor kept at its read of the results, those still not
        pushed: a pusher's call that landed in between took its kept predictions out of the ledger as it counted
        them pushed (one step), so they looked unpredicted.  Read after the results, the pushed set misses none."""
        landed = [task_id for task_id, pushed in zip(task_ids, pending.ledger.pushed(task_ids), strict=True) if pushed]
        if not landed:
            return task_ids
        self.jobs.add(pending.job_id, "done", landed)
        self._pushed(pending, landed)
        return [task_id for task_id in task_ids if task_id not in set(landed)]

    def _held_by_label_studio(self, pending: PendingChunk, task_ids: Sequence[TaskId]) -> dict[int, dict[str, Any]]:
        """The claimed tasks' data as Label Studio holds it, by task id: what is predicted and pushed, whatever
        the request that started the job carried.  A task the project does not hold fails; when Label Studio
        cannot be read, every task waits for the chunk's next run."""
        if not task_ids:
            return {}
        gateway = self.predictor.gateway(pending.ctx)
        assert gateway is not None and pending.ctx.project is not None
        try:
            held = gateway.task_data(int(pending.ctx.project), [int(task_id) for task_id in task_ids])
        except LabelStudioError as exc:
            log.warning(
                "job %s chunk %s: cannot read its tasks from Label Studio: %s", pending.job_id, pending.index, exc
            )
            if not exc.retryable or pending.last_attempt:
                for task_id in task_ids:
                    self._fail(
                        pending.job_id, task_id, f"cannot read the task from Label Studio: {exc}", pending.outcome
                    )
            else:
                with pending.outcome.lock:
                    pending.outcome.waiting.extend(task_ids)
            return {}
        for task_id in task_ids:
            if int(task_id) not in held:
                message = f"task {task_id} is not a task of project {pending.ctx.project} in Label Studio"
                self._fail(pending.job_id, task_id, message, pending.outcome)
        return held

    def _drop_predictions_of_other_data(self, pending: PendingChunk, digests: dict[int, str]) -> set[int]:
        """Predictions in the ledger made from data other than Label Studio's (a caller's own data for a task
        id, or the task's data before it changed) are never pushed.  One that was handed over as an opened
        task's answer may be in Label Studio already: it is checked there first.  Returns the tasks not to
        predict now: in Label Studio already, or waiting for Label Studio to say."""
        ledger = pending.ledger
        foreign, on_their_way = ledger.made_from_other_data(digests)
        if not foreign:
            return set()
        log.warning(
            "job %s: %d kept predictions were made from other data; predicted again", pending.job_id, len(foreign)
        )
        handed = [int(task_id) for task_id in on_their_way]
        gateway = self.predictor.gateway(pending.ctx)
        assert gateway is not None and pending.ctx.project is not None
        try:
            there = (
                gateway.predicted_among(int(pending.ctx.project), handed, pending.ctx.model_version)
                if handed
                else set()
            )
        except LabelStudioError as exc:  # which were stored is unknown: they wait, the others go
            log.warning("job %s: cannot check Label Studio for handed-over tasks: %s", pending.job_id, exc)
            for task_id in handed:
                self._wait_for(pending, task_id)
            ledger.drop_other_data([task_id for task_id in foreign if int(task_id) not in handed], set())
            return set(handed)
        ledger.drop_other_data(foreign, there)
        if there:
            self.jobs.add(pending.job_id, "done", list(there))
            self._pushed(pending, list(there))
        return there

    def _wait_while_backlog_is_full(self, ledger: Ledger) -> None:
        """Back-pressure: while Label Studio falls behind, the window gets no new tasks from this process."""
        while self.pusher.backlog_full(ledger):
            time.sleep(0.5)

    def _predictor_of(
        self, pending: PendingChunk, task_id: int, data: dict[str, Any], digest: str
    ) -> Callable[[], None]:
        def predict() -> None:
            result = self.predictor.outcome(pending.ctx, {"id": task_id, "data": data})
            try:
                if isinstance(result, TaskError):
                    if isinstance(result, JobPaused) or (
                        isinstance(result, LLMError) and result.retryable and not pending.last_attempt
                    ):
                        self._wait_for(pending, task_id)
                    else:
                        self._fail(pending.job_id, task_id, str(result), pending.outcome)
                    return
                with pending.outcome.lock:
                    pending.outcome.predicted += 1
                self._keep(pending, task_id, result, digest)
            except Exception:  # Redis away: the answer stays in memory, and settle records it (no new LLM call)
                log.warning("job %s task %s: could not record the outcome", pending.job_id, task_id, exc_info=True)
                if not isinstance(result, TaskError):
                    with pending.outcome.lock:
                        pending.unrecorded[str(task_id)] = (result, digest)
                else:
                    self._wait_for(pending, task_id)

        return predict

    def _keep(self, pending: PendingChunk, task_id: TaskId, prediction: Prediction, digest: str) -> None:
        """Straight to the outbox: should Label Studio have been handed this task meanwhile (an opened task), the
        pusher's ``take_batch`` leaves it out, and settle finds it on its way."""
        pending.ledger.keep_answer(task_id, prediction, digest)
        with pending.outcome.lock:
            pending.queued.append(str(task_id))

    def _record_unrecorded(self, pending: PendingChunk) -> None:
        """Record the answers that Redis could not take when they came (the LLM is not asked again)."""
        with pending.outcome.lock:
            unrecorded = dict(pending.unrecorded)
        for task_id, (prediction, digest) in unrecorded.items():
            self._keep(pending, task_id, prediction, digest)  # Redis still away: raises, and the tracker tries again
            with pending.outcome.lock:
                pending.unrecorded.pop(task_id, None)

    def _wait_for(self, pending: PendingChunk, task_id: TaskId) -> None:
        with pending.outcome.lock:
            pending.outcome.waiting.append(task_id)

    def _queue(self, pending: PendingChunk, task_ids: list[str]) -> None:
        """Hand predictions kept in the ledger to the pusher, unless they are on their way already."""
        if not task_ids:
            return
        ledger, outcome = pending.ledger, pending.outcome
        being_stored, overdue = ledger.on_their_way(task_ids)
        if being_stored and self.pusher.reconcile_due(pending.ctx, ledger):  # a push with an unknown outcome
            being_stored, overdue = ledger.on_their_way(task_ids)
        on_their_way = set(being_stored) | set(overdue)
        with pending.outcome.lock:  # a worker or Label Studio is storing it right now: look again later
            outcome.waiting.extend(int(task_id) for task_id in being_stored)
        call = ledger.push_in_flight() if being_stored else None
        if call is not None and set(being_stored) & set(call.tasks):  # read back from then on (its pusher may be gone)
            pending.free_by(call.reconcile_at)
        if overdue:
            self._check_overdue(pending, overdue)
        fresh = [task_id for task_id in task_ids if task_id not in on_their_way]
        ledger.queue_push(fresh)
        with pending.outcome.lock:
            pending.queued.extend(fresh)

    def _check_overdue(self, pending: PendingChunk, overdue: list[str]) -> None:
        """Pushes marked long ago (a crash, or a hand-over): in Label Studio, or pushed again (no new LLM call)."""
        label_studio = self.predictor.gateway(pending.ctx)
        assert label_studio is not None and pending.ctx.project is not None
        try:
            found = label_studio.predicted_among(
                int(pending.ctx.project), [int(task_id) for task_id in overdue], pending.ctx.model_version
            )
            landed = [task_id for task_id in overdue if int(task_id) in found]
            missing = [task_id for task_id in overdue if int(task_id) not in found]
            pending.ledger.reconcile(landed, missing)  # what never landed is pushed again, not asked again
            self._pushed(pending, landed)
            with pending.outcome.lock:
                pending.queued.extend(missing)
        except LabelStudioError as exc:
            log.warning("job %s: cannot check Label Studio for earlier pushes: %s", pending.job_id, exc)
            with pending.outcome.lock:
                pending.outcome.waiting.extend(int(task_id) for task_id in overdue)

    def settle(self, pending: PendingChunk, patient: bool = True) -> ChunkOutcome | None:
        """Finish the chunk once its tasks are pushed; None while some are still on their way (``patient``).

        Tasks that cannot land now (Label Studio away, handed over, claimed elsewhere, a retryable LLM error)
        are ``waiting``: the chunk runs again after ``retry_in`` (or, on its last attempt, they fail).
        """
        if not pending.predictions_done():
            return None
        self._record_unrecorded(pending)
        self._release_claims(pending)
        ledger, outcome = pending.ledger, pending.outcome
        if pending.predicted_at is None:
            self.jobs.add(pending.job_id, "done", pending.queued)  # every prediction is kept: progress
            pending.predicted_at = time.time()  # wall clock: compared with the pusher's progress, kept in Redis
            outcome.waiting.extend(pending.not_started())  # handed back by a closed window: the next run's
        if pending.sent_again:  # its next run pushes what was kept and finishes it
            return ChunkOutcome()
        seen = ledger.whereabouts(pending.queued)
        self._pushed(pending, seen.pushed)
        for task_id, reason in seen.refused.items():
            self._fail(pending.job_id, task_id, reason, outcome)
        settled = {*seen.pushed, *seen.refused}
        open_ids = [task_id for task_id in pending.queued if task_id not in settled]
        waiting_since = max(pending.predicted_at, ledger.pusher_busy_until()) if open_ids and patient else 0.0
        if open_ids and patient and time.time() - waiting_since < self.settings.push_patience:
            if seen.coming:
                pending.queued = open_ids
                return None
        pending.queued = []
        if open_ids and pending.last_attempt:
            ledger.withdraw(open_ids)
            for task_id in open_ids:
                self._fail(pending.job_id, task_id, "push to Label Studio failed", outcome)
        else:
            outcome.waiting.extend(int(task_id) for task_id in open_ids)
        if outcome.waiting:
            outcome.retry_in = self._retry_in(pending)
            log.info(
                "job %s chunk %s: %d tasks open, again in %.1f s",
                pending.job_id,
                pending.index,
                len(outcome.waiting),
                outcome.retry_in,
            )
        else:
            self.jobs.finish_chunk(pending.job_id, pending.index)
        return outcome

    def _retry_in(self, pending: PendingChunk) -> float:
        """The backoff, but no later than just after what the waiting tasks wait for lapses (a dead process's claims,
        its push's read-back): recovery after a crash takes the lapse, not the lapse plus a backoff that grew
        meanwhile (up to ``BATCH_RETRY_MAX_DELAY``)."""
        retry_in = backoff(pending.attempt, cap=self.settings.batch_retry_max_delay)
        if pending.free_at is None:
            return retry_in
        return min(retry_in, max(0.0, pending.free_at - time.time()) + LAPSE_MARGIN)

    def _release_claims(self, pending: PendingChunk) -> None:
        if not pending.claims_released:  # every prediction is kept: the claims can go
            pending.claims.release()
            pending.claims_released = True

    def hand_back(self, pending: PendingChunk, everything: bool = False) -> bool:
        """Let another worker take this chunk at once (this process is stopping): the claims of the tasks the window
        did not start are released — with ``everything``, all of them, answers received so far recorded first — and
        this process's name leaves the chunk's holder record.  True when the caller should send the chunk again now;
        what the calls still in flight answer is recorded (``settle``) and pushed by the chunk's next run."""
        if everything:  # the drain's time is up: calls still open die with the process
            self._record_unrecorded(pending)
            self._release_claims(pending)
        elif not pending.sent_again:
            not_started = pending.not_started()
            if not not_started:
                return False
            pending.claims.let_go(not_started)
        if pending.sent_again:
            return False
        if pending.holder is not None:
            self.jobs.drop_holder(pending.job_id, pending.index, pending.holder)
        pending.sent_again = True
        log.info("job %s chunk %s: handed back to the other workers", pending.job_id, pending.index)
        return True

    def abandon(self, job_id: str, index: int, message: str) -> None:
        """Give up on a chunk that keeps crashing: its open tasks fail with ``message``, the job goes on."""
        ids = self.jobs.chunk_task_ids(job_id, index) or []
        done = self.jobs.members(job_id, "done", ids)
        failed = self.jobs.members(job_id, "failed", ids)
        for task_id, is_done, is_failed in zip(ids, done, failed, strict=True):
            if not (is_done or is_failed):
                self._fail(job_id, task_id, message, ChunkOutcome())
        self.jobs.finish_chunk(job_id, index)

    def _fail(self, job_id: str, task_id: TaskId, message: str, outcome: ChunkOutcome) -> None:
        self.jobs.add(job_id, "failed", [task_id])
        self.jobs.record_error(job_id, int(task_id), message)
        with outcome.lock:
            outcome.failed += 1

    def _pushed(self, pending: PendingChunk, task_ids: Collection[TaskId]) -> None:
        """Count tasks the ledger records as in Label Studio."""
        if not task_ids:
            return
        self.jobs.add(pending.job_id, "pushed", task_ids)
        with pending.outcome.lock:
            pending.outcome.pushed += len(task_ids)
