"""The worker's Celery application: the shared one with the batch tasks registered, and its watchdog."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import task_received, worker_ready

from shared.adapters.queue import PREDICT_CHUNK, chunk_of, make_celery
from shared.domain.config import Settings
from worker.tasks import PerProcess, register_tasks
from worker.watchdog import start_watchdog


def create_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    services = PerProcess(settings, app)
    register_tasks(app, services)

    watchdogs: list = []

    @worker_ready.connect(weak=False)
    def _watch(sender: Any = None, **_kwargs: Any) -> None:
        if not watchdogs:  # worker_ready comes again after the broker reconnects: one watchdog is enough
            watchdogs.append(
                start_watchdog(
                    lambda: services.jobs,
                    app,
                    sender.hostname,
                    settings.batch_claim_seconds,
                    settings.job_stall_seconds,
                )
            )

    @task_received.connect(weak=False)
    def _hold(sender: Any = None, request: Any = None, **_kwargs: Any) -> None:
        """This worker took a chunk's message: if it dies holding it, the watchdogs send the chunk again."""
        if request is not None and request.name == PREDICT_CHUNK:
            job_id, index = chunk_of(request.id)
            services.jobs.hold_chunk(job_id, index, sender.hostname)

    return app
