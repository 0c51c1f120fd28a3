"""Starting and cancelling batch jobs: what the API, the CLI and the webhook share."""

from __future__ import annotations

import logging

from kombu.exceptions import OperationalError

from shared.adapters.jobs import JobState, JobStatus
from shared.adapters.queue import DISPATCH_JOB, chunk_task_id
from shared.domain.errors import LimitReached, Unavailable
from shared.projects import PredictionContext
from shared.services import Services

log = logging.getLogger(__name__)


def start_job(services: Services, ctx: PredictionContext, task_ids: list[int]) -> str:
    """Store a job and queue it; raises LimitReached (nothing stored) when the project has its
    MAX_ACTIVE_JOBS_PER_PROJECT or has spent its PROJECT_DAILY_USD today, Unavailable (the job marked failed)
    when the broker does not take it.

    The job keeps the task ids only: the workers predict the data Label Studio holds for them."""
    within_bounds(services, ctx.project)
    job_id = services.jobs.create(services.projects.snapshot(ctx), task_ids, services.settings.batch_chunk_size)
    try:
        services.celery.send_task(DISPATCH_JOB, args=[job_id])
    except OperationalError as exc:
        services.jobs.abort(job_id, f"could not queue the job: {exc}")
        raise Unavailable(f"the job queue is unavailable: {exc}") from None
    log.info(
        "project %s: job %s queued, %d tasks, model version %s", ctx.project, job_id, len(task_ids), ctx.model_version
    )
    return job_id


def within_bounds(services: Services, project: str | None) -> None:
    """The operator's bounds on a project's jobs: checked before a job is stored (two requests at the same
    moment may both pass, one job over the bound)."""
    if project is None:
        return
    services.predictor.spend.check(project)
    limit = services.settings.max_active_jobs_per_project
    active = services.jobs.active_count(project)
    if active >= limit:
        raise LimitReached(
            f"project {project} has {active} queued or running jobs, MAX_ACTIVE_JOBS_PER_PROJECT={limit}: wait for "
            "one to finish, or cancel one (POST /jobs/<id>/cancel?project=<id>; GET /jobs?project=<id> lists them)"
        )


def cancel_job(services: Services, job_id: str) -> JobStatus | None:
    """Cancel a job: its queued chunk messages are revoked, and any that still arrive do nothing; its batches
    at the provider's Batch API are cancelled too."""
    unfinished = services.jobs.unfinished_chunks(job_id)
    status = services.jobs.cancel(job_id)
    if status is not None and status.state == JobState.CANCELLED and unfinished:
        services.celery.control.revoke([chunk_task_id(job_id, index) for index in unfinished])
    if status is not None and status.state == JobState.CANCELLED and status.mode == "batch_api":
        services.batch_jobs.cancel_batches(job_id)
        status = services.jobs.status(job_id)
    return status
