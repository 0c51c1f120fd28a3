"""The worker's Celery application: the shared one with the batch tasks registered."""

from __future__ import annotations

from celery import Celery

from shared.config import Settings
from shared.queue import make_celery
from worker.tasks import Services, register_tasks


def create_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    register_tasks(app, Services(settings))
    return app
