"""Starting and cancelling batch jobs: what the API, the CLI and the webhook share."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kombu.exceptions import OperationalError

from shared.adapters.jobs import JobState, JobStatus
from shared.adapters.queue import DISPATCH_JOB, chunk_task_id, send, send_chunks
from shared.batch_jobs import live_only
from shared.domain.errors import InvalidRequest, LimitReached, Unavailable
from shared.projects import PredictionContext
from shared.services import Services

log = logging.getLogger(__name__)


def start_job(services: Services, ctx: PredictionContext, task_ids: list[int]) -> str:
    """Store a job and queue it; raises LimitReached (nothing stored) when the project has its
    MAX_ACTIVE_JOBS_PER_PROJECT or has spent its PROJECT_DAILY_USD today, Unavailable (the job marked failed)
    when the broker does not take it.

    The job keeps the task ids only: the workers predict the data Label Studio holds for them."""
    within_bounds(services, ctx.project)
    job_id = services.jobs.create(
        services.projects.snapshot(ctx),
        task_ids,
        services.settings.batch_chunk_size,
        priority=ctx.config.priority,
        max_usd=services.settings.batch_max_usd or None,
    )
    queue_job(services, job_id)
    log.info(
        "project %s: job %s queued, %d tasks, model version %s", ctx.project, job_id, len(task_ids), ctx.model_version
    )
    return job_id


def open_job(
    services: Services, ctx: PredictionContext, priority: int | None = None, max_usd: float | None = None
) -> str:
    """Store a job with no task yet, to be given its tasks page by page (``feed_job``); raises LimitReached as
    ``start_job`` does.  It counts as active from now on (MAX_ACTIVE_JOBS_PER_PROJECT).  Its priority and budget
    are the project's (extra params ``priority``) and ``BATCH_MAX_USD`` unless given."""
    within_bounds(services, ctx.project)
    job_id = services.jobs.create(
        services.projects.snapshot(ctx),
        [],
        services.settings.batch_chunk_size,
        sealed=False,
        priority=priority or ctx.config.priority,
        max_usd=(services.settings.batch_max_usd if max_usd is None else max_usd) or None,
    )
    log.info("project %s: job %s opened, model version %s; its tasks follow", ctx.project, job_id, ctx.model_version)
    return job_id


def feed_job(services: Services, ctx: PredictionContext, job_id: str, pages: Iterable[list[int]]) -> int:
    """Add each page of task ids to an open job as it is read, then seal it; returns how many were added.

    A project whose jobs run live has its job queued at the first page, so the first predictions come while
    the other pages are read; one whose job may go through the provider's Batch API is queued once every task
    is in (the Batch API takes a job whole).  Stops early when the job was cancelled meanwhile.  When reading
    a page fails, the job fails with the reason (the chunks already queued still run) and the error is raised."""
    live, queued, added = live_only(ctx), False, 0
    chunk_size = services.settings.batch_chunk_size
    try:
        for ids in pages:
            if not ids:
                continue
            if not services.jobs.extend(job_id, ids, chunk_size):
                log.info("job %s takes no more tasks (cancelled?) after %d", job_id, added)
                return added
            added += len(ids)
            if live and not queued:
                queue_job(services, job_id)
                queued = True
    except BaseException as exc:
        services.jobs.abort(job_id, f"reading the project's tasks stopped after {added}: {type(exc).__name__}: {exc}")
        raise
    services.jobs.seal(job_id)
    if not queued:
        queue_job(services, job_id)
    log.info("project %s: job %s sealed with %d tasks", ctx.project, job_id, added)
    return added


def queue_job(services: Services, job_id: str) -> None:
    """Send the job's dispatch message; raises Unavailable (the job marked failed) when the broker does not take
    it."""
    try:
        send(services.celery, DISPATCH_JOB, [job_id])
    except OperationalError as exc:
        services.jobs.abort(job_id, f"could not queue the job: {exc}")
        raise Unavailable(f"the job queue is unavailable: {exc}") from None


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


def pause_job(services: Services, job_id: str) -> JobStatus | None:
    """Pause a queued or running job: no task of it is asked of the LLM until it is resumed (calls in flight
    finish); raises InvalidRequest for a job in another state."""
    status = services.jobs.pause(job_id, "paused by request")
    if status is not None and status.state != JobState.PAUSED:
        raise InvalidRequest(f"job {job_id} is {status.state}: only a queued or running job can be paused")
    return status


def resume_job(services: Services, job_id: str, max_usd: float | None = None) -> JobStatus | None:
    """Resume a paused job where it stopped (with a new budget when given): its chunks are queued again, and
    none of its tasks answered is asked again.  Raises InvalidRequest for a job not paused, or one whose spend
    leaves no room for one more call in its budget (``Jobs.spent_past``) and no higher budget is given."""
    status = services.jobs.status(job_id)
    if status is None:
        return None
    if status.state != JobState.PAUSED:
        raise InvalidRequest(f"job {job_id} is {status.state}: only a paused job can be resumed")
    budget = status.max_usd if max_usd is None else max_usd
    if budget and (spent := services.jobs.spent_past(job_id, budget)) is not None:
        raise InvalidRequest(
            f"job {job_id} spent ${spent:.4f} of its ${budget:.4f} budget, too much for one more call: resume it "
            "with a higher one (max_usd)"
        )
    state, chunks = services.jobs.resume(job_id, max_usd)
    send_chunks(services.celery, job_id, chunks)
    log.info("job %s resumed (%s), %d chunks queued", job_id, state, len(chunks))
    return services.jobs.status(job_id)


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
