"""The worker's Celery application: the shared one with the batch tasks registered, and the life cycle of its
processes' background loops (``worker/process.py``): each started by a Celery signal when its process starts and
stopped by another when it ends."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import (
    task_received,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from shared.adapters.queue import PREDICT_CHUNK, chunk_of, make_celery, publish_through_outages
from shared.domain.config import Settings
from worker.periodic import Periodic
from worker.process import PerProcess
from worker.tasks import register_tasks
from worker.watchdog import watchdog


def create_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    publish_through_outages(app, settings)  # a chunk's retry sent during a Redis restart is not lost
    services = PerProcess(settings, app)
    register_tasks(app, services)

    @worker_init.connect(weak=False)
    def _import_before_the_fork(**_kwargs: Any) -> None:
        """label_studio_sdk, imported once here and shared by the pool's children, rather than by each child at
        its first chunk: about two seconds of CPU per child, spent while the job's first tasks waited."""
        from label_studio_sdk import LabelStudio  # noqa: F401  (the client that pushes; the package loads it lazily)
        from label_studio_sdk.label_interface.interface import LabelInterface  # noqa: F401  (labeling configs)

    @worker_process_init.connect(weak=False)
    def _start_process(sender: Any = None, **_kwargs: Any) -> None:
        services.start(str(sender))  # Redis connections and loops, made after the fork, before the first chunk

    @worker_process_shutdown.connect(weak=False)
    def _stop_process(**_kwargs: Any) -> None:
        services.stop()  # the drain: calls in flight answered and kept, the rest handed back

    @worker_shutting_down.connect(weak=False)
    def _drain(how: str = "", **_kwargs: Any) -> None:
        if how == "Warm":  # a cold shutdown is left to Celery: it cancels the tasks and ends the processes
            services.leave()

    watchdogs: list[Periodic] = []

    @worker_ready.connect(weak=False)
    def _watch(sender: Any = None, **_kwargs: Any) -> None:
        if not watchdogs:  # worker_ready comes again after the broker reconnects: one watchdog is enough
            if not isinstance(sender.pool, PreforkPool):  # --pool solo or threads: the tasks run in this process
                services.start(str(sender.hostname))
            watchdogs.append(
                watchdog(
                    lambda: services.jobs,
                    app,
                    services.identity(sender.hostname),
                    settings.batch_claim_seconds,
                    settings.job_stall_seconds,
                    settings.watchdog_recent_jobs,
                ).start()
            )

    @worker_shutdown.connect(weak=False)
    def _stop_watching(**_kwargs: Any) -> None:
        """After the pool's processes drained (or, with a pool that does not fork, this process): the worker stops
        beating (its chunks are settled or handed back)."""
        services.stop()
        for loop in watchdogs:
            loop.stop()

    @task_received.connect(weak=False)
    def _hold(sender: Any = None, request: Any = None, **_kwargs: Any) -> None:
        """This worker took a chunk's message: if it dies holding it, the watchdogs send the chunk again."""
        if request is not None and request.name == PREDICT_CHUNK:
            job_id, index = chunk_of(request.id)
            services.jobs.hold_chunk(job_id, index, services.identity(sender.hostname))

    return app
