"""The Label Studio ML backend protocol (/health, /setup, /predict, /webhook, /versions), plus /jobs and /metrics.

Routes read the request, call the use cases and build the response body; errors are raised as the
classes of ``shared.domain.errors`` and become statuses in ``api/errors.py`` only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import TypedDict

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.observe import arrived, mark_interactive
from api.requests import at_most, is_task, json_object, optional_object, tasks_of
from api.state import services, state
from shared.adapters.deadline import deadline_after
from shared.adapters.evaluations import EvaluationScores, EvaluationStore
from shared.adapters.jobs import JobStatus, is_job_id
from shared.adapters.metrics import RedisCollector
from shared.adapters.queue import queue_key
from shared.adapters.store import ProjectSetup, project_id_of
from shared.dispatch import cancel_job, pause_job, resume_job, start_job
from shared.domain.config import decode_extra_params
from shared.domain.errors import InvalidRequest, NotFound, TaskError
from shared.domain.estimation.spend import budget_usd
from shared.domain.routing import Reason, Route, WayIn
from shared.domain.types import Prediction, Task, task_ids
from shared.projects import PredictionContext
from shared.redaction import redact
from shared.routing import route

MODEL_CLASS = "LLMInteractive"
PROMPT_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")

bp = Blueprint("ml_backend", __name__)


def text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class FailedTask(TypedDict):
    """A task's entry in ``results`` when it failed: no ``result``, so Label Studio stores nothing and logs why."""

    error: str
    model_version: str


def results_of(ctx: PredictionContext, outcomes: list[Prediction | TaskError]) -> list[Prediction | FailedTask]:
    """Label Studio's ``results``: a failed task becomes an entry without ``result``, so Label Studio
    stores nothing for it and logs the message, while the other tasks' predictions are kept."""
    return [
        FailedTask(error=redact(str(outcome)), model_version=ctx.model_version)
        if isinstance(outcome, TaskError)
        else outcome
        for outcome in outcomes
    ]


def answer(ctx: PredictionContext, results: Sequence[Prediction | FailedTask], **extra: object) -> dict[str, object]:
    return {"results": results, "model_version": ctx.model_version, **extra}


@contextmanager
def answering_now() -> Iterator[None]:
    """Around LLM calls made while Label Studio (or an annotator) waits: a thread slot of this process, and
    INTERACTIVE_DEADLINE for all of it; past the deadline the request ends in 504 (one task) or each
    unfinished task's error (several)."""
    slots = state().llm_slots
    with slots.hold() if slots else nullcontext():
        with deadline_after(services().settings.interactive_deadline, since=arrived()):
            yield


def predict_now(ctx: PredictionContext, tasks: list[Task]) -> list[Prediction | TaskError]:
    with answering_now():
        return services().predictor.outcomes(ctx, tasks)


@bp.get("/")
@bp.get("/health")
def health() -> ResponseReturnValue:
    """Label Studio allows this one second: no Redis, no LLM."""
    return {"status": "UP", "model_class": MODEL_CLASS}


@bp.post("/setup")
def setup() -> ResponseReturnValue:
    body = json_object()
    project = project_id_of(body.get("project"))
    if project is None:
        raise InvalidRequest('project must be "<id>.<timestamp>" as Label Studio sends it')
    setup = ProjectSetup(
        label_config=body.get("schema"),
        hostname=text_or_none(body.get("hostname")),
        access_token=text_or_none(body.get("access_token")),
        extra_params=decode_extra_params(body.get("extra_params")),
    )
    registration = services().projects.register(project, setup)
    unfilled = [{"name": item.name, "tag": item.tag, "reason": item.reason} for item in registration.unfilled]
    return {"model_version": registration.model_version, "unfilled": unfilled}


@bp.post("/predict")
def predict() -> ResponseReturnValue:
    """Answered as ``shared.domain.routing`` decides (its table): nothing for a smart tag, the annotator's answer,
    opened tasks in the request, a batch as a job answered at once."""
    body = json_object(checked_per_task=("tasks",))
    tasks = at_most(tasks_of(body), services().settings.max_tasks_per_request)
    params = optional_object(body, "params")
    project = project_id_of(body.get("project")) or project_id_of(tasks[0].get("project"))
    ctx = services().projects.context(project, body.get("label_config"), params.get("context"))
    predictor = services().predictor
    decision = route(ctx, WayIn.PREDICT, tasks, services().settings.batch_min_tasks)
    if decision.route is Route.SUGGEST_NOTHING:  # rather than overwrite what the annotator drew
        return answer(ctx, [predictor.empty(ctx) for _ in tasks])
    predictor.spend.check(ctx.project)  # PROJECT_DAILY_USD reached: one 429 rather than an error per task
    if decision.route is Route.QUEUE_JOB:
        return predict_batch(ctx, tasks)
    if decision.route is Route.ANSWER_OPENED:  # Label Studio stores what we answer: through the jobs' ledger
        with answering_now():
            return answer(ctx, results_of(ctx, services().opened_tasks.answers(ctx, tasks)))
    if decision.reason is Reason.ANNOTATOR and len(tasks) == 1:
        mark_interactive()
        # A failure propagates as its status with a JSON error (Label Studio 1.23 logs it; its labeling screen
        # only stops the spinner), rather than an error entry that it would drop without a trace.
        [outcome] = predict_now(ctx, tasks)
        if isinstance(outcome, TaskError):
            raise outcome
        return answer(ctx, [outcome])
    if decision.reason is not Reason.ANNOTATOR:
        current_app.logger.warning("%d tasks answered in the request, not as a job: %s", len(tasks), decision.message)
    return answer(ctx, results_of(ctx, predict_now(ctx, tasks)))


def predict_batch(ctx: PredictionContext, tasks: list[Task]) -> ResponseReturnValue:
    """Answer from the cache when every task is there; otherwise start a job and answer at once with no results
    (Label Studio stores nothing from them): the workers push the predictions with the same model version."""
    predictor = services().predictor
    ctx = services().projects.for_job(ctx)
    if predictor.cached_predictions(ctx, tasks[:1]) is not None:
        cached = predictor.cached_predictions(ctx, tasks)
        if cached is not None:  # Label Studio stores these: through the ledger, as an opened task's answer
            return answer(ctx, results_of(ctx, services().opened_tasks.offer_each(ctx, tasks, cached)))
    return answer(ctx, [], job=start_job(services(), ctx, task_ids(tasks)))


@bp.post("/webhook")
def webhook() -> ResponseReturnValue:
    body = json_object(checked_per_task=("tasks",))
    action = body.get("action")
    auto_predict = action == "TASKS_CREATED" and services().settings.auto_predict_on_import
    if action not in PROMPT_EVENTS and not auto_predict:
        return {"status": "Unknown event"}
    project_info = optional_object(body, "project")
    project = project_id_of(project_info)
    if project is None:
        raise InvalidRequest(f"{action} without project.id")
    if auto_predict:
        return predict_new_tasks(project, project_info.get("label_config"), body.get("tasks"))
    annotation = optional_object(body, "annotation")
    update = services().projects.remember_prompt(project, project_info.get("label_config"), annotation)
    return {"status": "ok", "prompt_changed": update.changed, "model_version": update.model_version}


def predict_new_tasks(project: str, label_config: str | None, event_tasks: object) -> ResponseReturnValue:
    """AUTO_PREDICT_ON_IMPORT: tasks just imported into Label Studio become a batch job at once, or the event is
    refused (400) naming the fix: Label Studio stores nothing from a webhook's answer."""
    tasks: list[Task] = [task for task in event_tasks if is_task(task)] if isinstance(event_tasks, list) else []
    if not tasks:
        return {"status": "ok", "detail": "no tasks with data in the event"}
    at_most(tasks, services().settings.max_tasks_per_request)
    ctx = services().projects.context(project, label_config, None, pool_max_age=0)
    decision = route(ctx, WayIn.AUTO_PREDICT, tasks)
    if decision.refused:
        current_app.logger.warning("project %s: %d new tasks not predicted: %s", project, len(tasks), decision.message)
        raise decision.error()
    return {"status": "ok", "job": start_job(services(), ctx, task_ids(tasks)), "model_version": ctx.model_version}


@bp.get("/versions")
def versions() -> ResponseReturnValue:
    project = project_id_of(request.args.get("project"))
    return {"versions": services().store.versions(project) if project else []}


def project_param() -> str | None:
    """``?project=<Label Studio project id>``, None when absent; 400 when it names no project."""
    value = request.args.get("project")
    if value is None:
        return None
    project = project_id_of(value)
    if project is None:
        raise InvalidRequest(f"project must be a Label Studio project id, got {value!r}")
    return project


@bp.get("/jobs")
def jobs() -> ResponseReturnValue:
    try:
        limit = min(max(int(request.args.get("limit", 50)), 1), 1000)
    except ValueError:
        raise InvalidRequest("limit must be a whole number") from None
    return {"jobs": [status.as_dict() for status in services().jobs.recent(project_param(), limit)]}


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> ResponseReturnValue:
    return found(services().jobs.status(job_id) if is_job_id(job_id) else None, job_id).as_dict()


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str) -> ResponseReturnValue:
    """Only with the job's project named, so a wrong or copied id cannot cancel another project's job."""
    return found(cancel_job(services(), project_job(job_id, "cancel")), job_id).as_dict()


@bp.post("/jobs/<job_id>/pause")
def pause(job_id: str) -> ResponseReturnValue:
    """No task of the job is asked of the LLM until it is resumed; with the job's project named, as for cancel."""
    return found(pause_job(services(), project_job(job_id, "pause")), job_id).as_dict()


@bp.post("/jobs/<job_id>/resume")
def resume(job_id: str) -> ResponseReturnValue:
    """The job goes on where it stopped; ``max_usd`` gives it a new budget (a job paused at its budget needs a
    higher one)."""
    job = project_job(job_id, "resume")
    raw = request.args.get("max_usd")
    return found(resume_job(services(), job, None if raw is None else budget_usd("max_usd", raw)), job_id).as_dict()


def project_job(job_id: str, action: str) -> str:
    """The job named in the path, when it is a job of the project the request names (``?project=``, required):
    a wrong or copied id cannot act on another project's job."""
    project = project_param()
    if project is None:
        raise InvalidRequest(
            f"project is required: POST /jobs/<id>/{action}?project=<the job's Label Studio project id>"
        )
    status = services().jobs.status(job_id) if is_job_id(job_id) else None
    if status is None or status.project != project:
        raise NotFound(f"no job {job_id} in project {project} (jobs are kept {services().settings.job_ttl} s)")
    return job_id


def found(status: JobStatus | None, job_id: str) -> JobStatus:
    if status is None:
        raise NotFound(f"no job {job_id} (jobs are kept {services().settings.job_ttl} s)")
    return status


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    backend = services()
    backend.metrics.flush()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        RedisCollector(backend.store, backend.jobs, queue_key(backend.settings), backend.settings.metrics_recent_jobs)
    )
    registry.register(EvaluationScores(EvaluationStore(backend.store)))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
