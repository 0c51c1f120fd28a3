"""The worker's Celery application: the shared one with the batch tasks registered."""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_ready

from shared.adapters.queue import make_celery
from shared.domain.config import Settings
from worker.tasks import PerProcess, register_tasks
from worker.watchdog import start_watchdog


def create_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    services = PerProcess(settings)
    register_tasks(app, services)

    watchdogs: list = []

    @worker_ready.connect(weak=False)
    def _watch_for_stalled_jobs(**_kwargs) -> None:
        if not watchdogs:  # worker_ready comes again after the broker reconnects: one watchdog is enough
            watchdogs.append(start_watchdog(lambda: services.jobs, app, settings.job_stall_seconds))

    return app
