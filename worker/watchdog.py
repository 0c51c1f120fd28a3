"""Rescue chunks whose messages are stuck or lost: the worker holding them died, or the broker dropped them.

Chunks are idempotent (the ledger makes every effect exactly once), so the remedy is always the same:
send the chunk's message again.  Every worker's main process runs one watchdog loop, which

- beats: says every ``BATCH_CLAIM_SECONDS / 3`` that this worker is alive, for ``BATCH_CLAIM_SECONDS``;
- rescues orphans: a chunk whose message was taken by a worker that stopped beating (SIGKILL, OOM, a lost
  node) is sent again at once — its message would otherwise come back only after the broker's visibility
  timeout (an hour by default).  The dead worker's task claims lapse within the same ``BATCH_CLAIM_SECONDS``,
  so the new run can take its tasks; a child process killed alone needs none of this (Celery re-queues its
  message at once, ``task_reject_on_worker_lost``);
- rescues stalled jobs: a job with unfinished chunks and no progress for ``JOB_STALL_SECONDS`` gets those it
  had queued sent again, and its queue refilled (Celery drops the message of a task that failed, even when the
  broker vanished mid-task; a job whose queued chunks' messages were lost or revoked gets no more otherwise);
- rescues Batch API polls (``shared.batch_jobs``): a job's poll overdue by ``BATCH_CLAIM_SECONDS`` (its
  countdown message died with a worker or with Redis) is sent again.

Locks in Redis let one worker act per chunk and period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psutil
from celery import Celery

from shared.adapters.jobs import ACTIVE_STATES, WAITING_FOR_BATCHES, Jobs
from shared.adapters.queue import POLL_BATCHES, holder_parts, send, send_chunk, send_chunks
from shared.domain.config import setting_default
from worker.periodic import Periodic

log = logging.getLogger(__name__)

RECENT_JOBS: int = setting_default("watchdog_recent_jobs")  # for callers without the settings (tests)


def process_gone(node: str) -> Callable[[str], bool]:
    """Whether a chunk's holder is a process of this node that is no longer running (a killed prefork child)."""

    def gone(holder: str) -> bool:
        holder_node, pid = holder_parts(holder)
        if holder_node != node or pid is None:
            return False
        try:
            return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return True

    return gone


def rescue_orphaned_chunks(
    jobs: Jobs,
    celery: Celery,
    claim_seconds: float,
    node: str | None = None,
    recent: int = RECENT_JOBS,
) -> list[tuple[str, int]]:
    """Re-send the chunks held by workers that stopped beating, or by processes of ``node`` that died."""
    rescued = []
    gone = process_gone(node) if node else (lambda holder: False)
    for job_id, index, holder in jobs.orphaned_chunks(recent, gone):
        if not jobs.release_orphan(job_id, index, holder, claim_seconds):
            continue  # another worker is on it
        log.warning("job %s chunk %s: its worker %s stopped; sending the chunk again", job_id, index, holder)
        send_chunk(celery, job_id, index)
        rescued.append((job_id, index))
    return rescued


def rescue_stalled_jobs(jobs: Jobs, celery: Celery, stall_seconds: float, recent: int = RECENT_JOBS) -> list[str]:
    """Re-send the unfinished chunks of stalled jobs; returns the ids of the jobs rescued."""
    rescued = []
    now = time.time()
    for job_id in jobs.recent_ids(limit=recent):
        state, last = jobs.activity(job_id)
        if state not in ACTIVE_STATES or now - last < stall_seconds or jobs.batch_phase(job_id) in WAITING_FOR_BATCHES:
            continue  # a job waiting for its Batch API answers has its polls rescued instead
        if not jobs.claim_rescue(job_id, stall_seconds):
            continue  # another worker is on it
        dispatched = jobs.dispatched(job_id)
        unfinished = [index for index in jobs.unfinished_chunks(job_id) if index < dispatched]
        log.warning(
            "job %s: no progress for %.0f s; sending its %d unfinished queued chunks again",
            job_id,
            now - last,
            len(unfinished),
        )
        send_chunks(celery, job_id, [*unfinished, *jobs.requeue(job_id, unfinished)])
        jobs.touch(job_id)
        rescued.append(job_id)
    return rescued


def rescue_overdue_polls(jobs: Jobs, celery: Celery, grace: float, recent: int = RECENT_JOBS) -> list[str]:
    """Send again the poll of a Batch API job that should have run ``grace`` seconds ago (its message died
    with a worker, or with Redis); returns the jobs.  A poll that comes back late anyway is dropped."""
    rescued = []
    for job_id, seq in jobs.overdue_polls(grace, recent):
        if not jobs.claim_rescue(job_id, grace):
            continue
        log.warning("job %s: its Batch API poll is overdue; sending it again", job_id)
        send(celery, POLL_BATCHES, [job_id, seq])
        rescued.append(job_id)
    return rescued


def watchdog(
    jobs_factory: Callable[[], Jobs],
    celery: Celery,
    node: str,
    claim_seconds: float,
    stall_seconds: float,
    recent: int = RECENT_JOBS,
) -> Periodic:
    """Beat and rescue orphans every third of the claim period, check for stalls every quarter of the stall
    period, from ``start`` to ``stop`` (the worker's main process, for as long as the worker runs); each looks
    through the latest ``recent`` jobs (``WATCHDOG_RECENT_JOBS``)."""
    stalls_every = max(1.0, stall_seconds / 4)
    next_stall_check = time.monotonic() + stalls_every

    def one_round() -> None:
        nonlocal next_stall_check
        jobs = jobs_factory()
        jobs.beat(node, claim_seconds)
        rescue_orphaned_chunks(jobs, celery, claim_seconds, node, recent)
        rescue_overdue_polls(jobs, celery, claim_seconds, recent)
        if time.monotonic() >= next_stall_check:
            next_stall_check = time.monotonic() + stalls_every
            rescue_stalled_jobs(jobs, celery, stall_seconds, recent)

    return Periodic(claim_seconds / 3, one_round, "job-watchdog")
