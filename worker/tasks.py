"""The Celery tasks: thin wrappers that turn chunk outcomes into Celery retries."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from shared.adapters.jobs import LIVE_STATES
from shared.adapters.queue import (
    DISPATCH_JOB,
    POLL_BATCHES,
    PREDICT_CHUNK,
    send,
    send_chunks,
)
from shared.domain.backoff import backoff
from shared.logs import log_context
from worker.process import PerProcess

log = logging.getLogger(__name__)

# not a setting: how soon added tasks are dispatched, a cadence (STREAM_SILENCE bounds the wait)
STREAM_DISPATCH_EVERY = 1.0  # seconds between dispatches of a job still taking tasks


def register_tasks(app: Celery, services: PerProcess) -> None:
    @app.task(name=DISPATCH_JOB, bind=True, max_retries=None)
    def dispatch_job(self: Task[..., int], job_id: str) -> int:
        """Queue the job's first chunk messages, or first send it through the provider's Batch API (its polls
        dispatch it again once the answers are in).  Only ``JOB_QUEUED_CHUNKS`` x its priority are queued: each
        one a worker takes brings the next (``predict_chunk``), so jobs running side by side share the workers.

        A job still taking tasks (unsealed: ``llm-backend batch`` adds them page by page) runs live: its chunks
        are queued as they come, by this task sent again every ``STREAM_DISPATCH_EVERY`` s until it is sealed."""
        jobs = services.jobs
        attempt = self.request.retries
        sealed = jobs.sealed(job_id)  # read before the chunks are counted: none added after it is missed
        try:
            with log_context(job_id=job_id):
                through_batch_api = sealed and services.batch_jobs.begin(job_id)
        except Exception as exc:  # the provider or Redis away: try again, the submission resumes
            log.exception("job %s: sending it to the Batch API failed (attempt %d)", job_id, attempt + 1)
            if attempt + 1 < services.settings.batch_max_attempts:
                raise self.retry(
                    countdown=backoff(attempt, cap=services.settings.batch_retry_max_delay), exc=exc
                ) from None
            through_batch_api = services.batch_jobs.give_up_submitting(job_id, f"{type(exc).__name__}: {exc}")
        if through_batch_api:
            send(app, POLL_BATCHES, [job_id, jobs.poll_seq(job_id)], services.settings.batch_api_poll_first)
            return 0
        queued = jobs.refill(job_id)
        send_chunks(app, job_id, queued)
        if not sealed:
            follow_stream(job_id)
        return len(queued)

    def follow_stream(job_id: str) -> None:
        """Dispatch an unsealed job again soon (a paused one too: it takes tasks); fail it when no tasks were added
        for ``STREAM_SILENCE`` s (the command adding them died)."""
        if services.jobs.state(job_id) not in LIVE_STATES:
            return
        silent = time.time() - services.jobs.extended_at(job_id)
        if silent > services.settings.stream_silence:
            log.warning("job %s: no tasks added for %.0f s; failing it", job_id, silent)
            services.jobs.abort(job_id, f"no tasks were added for {silent:.0f} s: the command adding them stopped")
            return
        send(app, DISPATCH_JOB, [job_id], STREAM_DISPATCH_EVERY)

    @app.task(name=POLL_BATCHES, bind=True, max_retries=None)
    def poll_batches(self: Task[..., dict[str, Any]], job_id: str, seq: int) -> dict[str, Any]:
        """Look at a Batch API job's batches, collect the finished ones; then poll again later (no worker waits
        in between) or, once all are in, dispatch the job's chunks.  Flower shows the batches' states."""
        try:
            with log_context(job_id=job_id):
                outcome = services.batch_jobs.poll(job_id, seq)
        except Exception as exc:  # Redis or the provider away: the watchdog sends an overdue poll again
            log.exception("job %s: poll %d failed", job_id, seq)
            raise self.retry(countdown=services.settings.batch_api_poll_first, exc=exc) from None
        if outcome.next_in is not None:
            send(app, POLL_BATCHES, [job_id, seq + 1], outcome.next_in)
        elif outcome.dispatch:
            send(app, DISPATCH_JOB, [job_id])
        return {"mode": "batch_api", "batches": outcome.batches, "next_poll_in": outcome.next_in}

    @app.task(name=PREDICT_CHUNK, bind=True, max_retries=None)
    def predict_chunk(self: Task[..., dict[str, Any]], job_id: str, index: int) -> dict[str, Any]:
        attempt = self.request.retries
        retry_in = backoff(attempt, cap=services.settings.batch_retry_max_delay)
        try:
            with log_context(job_id=job_id, chunk=index):
                instead = services.jobs.take_chunk(job_id, index)
                if instead is None:
                    log.info("job %s chunk %s: the job is paused; the chunk waits for its resume", job_id, index)
                    return {"parked": True}
                send_chunks(app, job_id, instead)  # the job's next chunks take this one's place in the queue
                pending = services.runner.start(job_id, index, attempt=attempt, owner=uuid.uuid4().hex)
                if pending is None:
                    return {"started": 0}
                # This process holds the chunk until its tasks are pushed: if it dies, the watchdogs send it again.
                pending.holder = services.holder
                services.tracker.add(pending)
                services.jobs.hold_chunk(job_id, index, pending.holder)
                services.runner.window.wait_for_room()  # every task in flight: the next chunk's may queue
        except SoftTimeLimitExceeded:
            log.warning("job %s chunk %s ran out of time; trying again", job_id, index)
            raise self.retry(countdown=retry_in) from None
        except Exception as exc:  # Redis or a bug: retry, bounded, rather than lose the chunk
            log.exception("job %s chunk %s failed (attempt %d)", job_id, index, attempt + 1)
            if attempt + 1 < services.settings.batch_max_attempts:
                raise self.retry(countdown=retry_in, exc=exc) from None
            services.runner.abandon(job_id, index, f"gave up after {attempt + 1} attempts: {type(exc).__name__}")
            return {"abandoned": True}
        return {"started": len(pending.calls)}
