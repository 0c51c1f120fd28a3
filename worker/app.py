"""The worker's Celery application: the shared one with the batch tasks registered, and its watchdog."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import task_received, worker_init, worker_process_init, worker_ready

from shared.adapters.queue import PREDICT_CHUNK, chunk_of, make_celery
from shared.domain.config import Settings
from worker.tasks import PerProcess, register_tasks
from worker.watchdog import start_watchdog


def create_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    services = PerProcess(settings, app)
    register_tasks(app, services)

    @worker_init.connect(weak=False)
    def _import_before_the_fork(**_kwargs: Any) -> None:
        """label_studio_sdk, imported once here and shared by the pool's children, rather than by each child at
        its first chunk: about two seconds of CPU per child, spent while the job's first tasks waited."""
        from label_studio_sdk import LabelStudio  # noqa: F401  (the client that pushes; the package loads it lazily)
        from label_studio_sdk.label_interface import LabelInterface  # noqa: F401  (labeling configs)

    @worker_process_init.connect(weak=False)
    def _build_services(**_kwargs: Any) -> None:
        services.prepare()  # Redis connections and thread pools, made after the fork, before the first chunk

    watchdogs: list = []

    @worker_ready.connect(weak=False)
    def _watch(sender: Any = None, **_kwargs: Any) -> None:
        if not watchdogs:  # worker_ready comes again after the broker reconnects: one watchdog is enough
            watchdogs.append(
                start_watchdog(
                    lambda: services.jobs,
                    app,
                    services.identity(sender.hostname),
                    settings.batch_claim_seconds,
                    settings.job_stall_seconds,
                )
            )

    @task_received.connect(weak=False)
    def _hold(sender: Any = None, request: Any = None, **_kwargs: Any) -> None:
        """This worker took a chunk's message: if it dies holding it, the watchdogs send the chunk again."""
        if request is not None and request.name == PREDICT_CHUNK:
            job_id, index = chunk_of(request.id)
            services.jobs.hold_chunk(job_id, index, services.identity(sender.hostname))

    return app
