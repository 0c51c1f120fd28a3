"""The Celery tasks: thin wrappers that turn chunk outcomes into Celery retries."""

from __future__ import annotations

import logging
import os
import uuid

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from shared.adapters.jobs import Jobs
from shared.adapters.queue import DISPATCH_JOB, PREDICT_CHUNK, chunk_task_id, holder_name
from shared.domain.backoff import backoff
from shared.domain.config import Settings
from shared.logs import log_context
from shared.services import Services
from worker.chunks import ChunkRunner, PendingChunk
from worker.pusher import Pusher
from worker.tracker import ChunkTracker
from worker.window import LLMWindow

log = logging.getLogger(__name__)


class PerProcess:
    """Per-process state, built after the fork: Redis connections and thread pools do not survive one."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self.settings = settings
        self.app = app
        self._pid: int | None = None

    def _build(self) -> None:
        services = Services.build(self.settings)
        self._jobs = services.jobs
        pusher = Pusher(services.predictor)
        pusher.start()
        window = LLMWindow(self.settings.llm_concurrency)
        self._runner = ChunkRunner(self.settings, services.projects, services.predictor, services.jobs, window, pusher)
        self._tracker = ChunkTracker(self._runner, self._send_again)
        self._pid = os.getpid()

    def _send_again(self, chunk: PendingChunk, countdown: float) -> None:
        """Celery's retry, for a chunk whose task returned already: the next attempt, after ``countdown``."""
        self.app.send_task(
            PREDICT_CHUNK,
            args=[chunk.job_id, chunk.index],
            task_id=chunk_task_id(chunk.job_id, chunk.index),
            countdown=countdown,
            retries=chunk.attempt + 1,
        )

    @property
    def jobs(self) -> Jobs:
        if self._pid != os.getpid():
            self._build()
        return self._jobs

    @property
    def runner(self) -> ChunkRunner:
        if self._pid != os.getpid():
            self._build()
        return self._runner

    @property
    def tracker(self) -> ChunkTracker:
        if self._pid != os.getpid():
            self._build()
        return self._tracker


def register_tasks(app: Celery, services: PerProcess) -> None:
    @app.task(name=DISPATCH_JOB, bind=True, max_retries=None)
    def dispatch_job(self: Task, job_id: str) -> int:
        """Fan a job out into chunk messages; a redelivery resumes where the last one stopped."""
        jobs = services.jobs
        total = jobs.chunk_count(job_id)
        start = jobs.dispatched(job_id)
        for index in range(start, total):
            app.send_task(PREDICT_CHUNK, args=[job_id, index], task_id=chunk_task_id(job_id, index))
            if index % 100 == 99:
                jobs.mark_dispatched(job_id, index + 1)
        jobs.mark_dispatched(job_id, total)
        return total - start

    @app.task(name=PREDICT_CHUNK, bind=True, max_retries=None)
    def predict_chunk(self: Task, job_id: str, index: int) -> dict:
        attempt = self.request.retries
        retry_in = backoff(attempt, cap=services.settings.batch_retry_max_delay)
        try:
            with log_context(job_id=job_id, chunk=index):
                pending = services.runner.start(job_id, index, attempt=attempt, owner=uuid.uuid4().hex)
                if pending is None:
                    return {"started": 0}
                services.tracker.add(pending)
                # This process holds the chunk until its tasks are pushed: if it dies, the watchdogs send it again.
                services.jobs.hold_chunk(job_id, index, holder_name(str(self.request.hostname), os.getpid()))
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
