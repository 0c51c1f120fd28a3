"""Retrieve Predictions on many tasks: answered at once, computed by the workers.

Label Studio sends every selected task in one /predict and gives up after 100 s, so a batch is
stored as a job, handed to Celery, and answered with ``{"results": []}`` (Label Studio then stores
nothing from the answer); the workers push the predictions back with the same model version.
"""

from __future__ import annotations

import logging

from celery import Celery
from kombu.exceptions import OperationalError

from api.errors import ApiError
from shared.config import Settings
from shared.jobs import Jobs
from shared.predictor import PredictionContext, Predictor
from shared.queue import DISPATCH_JOB

log = logging.getLogger(__name__)


def batch_blocker(ctx: PredictionContext, tasks: list[dict]) -> str | None:
    """Why these tasks cannot go to the workers (which must push them back), or None."""
    if ctx.project is None:
        return "the request names no project"
    if ctx.access is None:
        return "no Label Studio URL and key (set LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY or connect from Label Studio)"
    if not all(isinstance(task.get("id"), int) for task in tasks):
        return "not every task has an integer id"
    return None


def start_job(
    settings: Settings, jobs: Jobs, celery: Celery, predictor: Predictor, ctx: PredictionContext, tasks: list[dict]
) -> str:
    job_id = jobs.create(predictor.snapshot(ctx), tasks, settings.batch_chunk_size)
    try:
        celery.send_task(DISPATCH_JOB, args=[job_id])
    except OperationalError as exc:
        jobs.abort(job_id, f"could not queue the job: {exc}")
        raise ApiError(503, f"the job queue is unavailable: {exc}") from None
    log.info(
        "project %s: job %s queued, %d tasks, model version %s", ctx.project, job_id, len(tasks), ctx.model_version
    )
    return job_id
