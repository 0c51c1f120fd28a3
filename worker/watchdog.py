"""Rescue jobs whose messages were lost.

Celery drops the message of a task that fails, and a task can fail for reasons outside our code: the
broker vanishing mid-task (Redis restarting) makes even its retry unsendable.  Chunks are idempotent,
so the remedy is simple: a job with unfinished chunks that shows no progress for JOB_STALL_SECONDS
gets them sent again.  Every worker runs this check; a lock in Redis lets one of them act per period.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery

from shared.adapters.jobs import ACTIVE_STATES, Jobs
from shared.adapters.queue import PREDICT_CHUNK, chunk_task_id

log = logging.getLogger(__name__)


def rescue_stalled_jobs(jobs: Jobs, celery: Celery, stall_seconds: float, recent: int = 500) -> list[str]:
    """Re-send the unfinished chunks of stalled jobs; returns the ids of the jobs rescued."""
    rescued = []
    now = time.time()
    for job_id in jobs.recent_ids(limit=recent):
        state, last = jobs.activity(job_id)
        if state not in ACTIVE_STATES or now - last < stall_seconds:
            continue
        if not jobs.claim_rescue(job_id, stall_seconds):
            continue  # another worker is on it
        unfinished = jobs.unfinished_chunks(job_id)
        log.warning(
            "job %s: no progress for %.0f s; sending its %d unfinished chunks again",
            job_id,
            now - last,
            len(unfinished),
        )
        for index in unfinished:
            celery.send_task(PREDICT_CHUNK, args=[job_id, index], task_id=chunk_task_id(job_id, index))
        jobs.mark_dispatched(job_id, jobs.chunk_count(job_id))
        jobs.touch(job_id)
        rescued.append(job_id)
    return rescued


def start_watchdog(jobs_factory, celery: Celery, stall_seconds: float) -> threading.Thread:
    """Check every quarter of the stall period, for as long as the worker runs."""

    def loop() -> None:
        while True:
            time.sleep(max(1.0, stall_seconds / 4))
            try:
                rescue_stalled_jobs(jobs_factory(), celery, stall_seconds)
            except Exception:  # Redis or the broker away: the next round tries again
                log.warning("stalled-job check failed", exc_info=True)

    thread = threading.Thread(target=loop, daemon=True, name="job-watchdog")
    thread.start()
    return thread
