"""The Label Studio ML backend protocol (/health, /setup, /predict, /webhook, /versions), plus /jobs and /metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.batch import batch_blocker
from api.errors import ApiError
from api.observe import mark_interactive
from api.requests import json_object, optional_object, tasks_of
from shared.adapters.jobs import JobStatus
from shared.adapters.metrics import RedisCollector
from shared.adapters.queue import queue_key
from shared.adapters.store import ProjectSetup, project_id_of
from shared.dispatch import QueueUnavailable, cancel_job, start_job
from shared.domain.config import ConfigError, decode_extra_params
from shared.domain.errors import TaskError
from shared.domain.labeling import LabelingConfigError
from shared.predictor import PredictionContext, Predictor
from shared.services import Services

MODEL_CLASS = "LLMInteractive"
PROMPT_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")

bp = Blueprint("ml_backend", __name__)


def backend() -> Services:
    return current_app.extensions["llm_backend"]


def predictor() -> Predictor:
    return backend().predictor


def text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def bad_config(exc: Exception) -> ApiError:
    return ApiError(400, str(exc))


@bp.get("/")
@bp.get("/health")
def health():
    """Label Studio allows this one second: no Redis, no LLM."""
    return {"status": "UP", "model_class": MODEL_CLASS}


@bp.post("/setup")
def setup():
    body = json_object()
    project = project_id_of(body.get("project"))
    if project is None:
        raise ApiError(400, 'project must be "<id>.<timestamp>" as Label Studio sends it')
    schema = body.get("schema")
    try:
        setup = ProjectSetup(
            label_config=schema,
            hostname=text_or_none(body.get("hostname")),
            access_token=text_or_none(body.get("access_token")),
            extra_params=decode_extra_params(body.get("extra_params")),
        )
        config = predictor().project_config(setup)
        predictor().spec(config, schema)
    except (ConfigError, LabelingConfigError) as exc:
        raise bad_config(exc) from None
    store = predictor().store
    store.save_setup(project, setup)
    version = predictor().version_for(project, config, schema)
    store.record_version(project, version)
    return {"model_version": version}


@bp.post("/predict")
def predict():
    body = json_object()
    tasks = tasks_of(body)
    params = optional_object(body, "params")
    project = project_id_of(body.get("project")) or project_id_of(tasks[0].get("project"))
    try:
        ctx = predictor().context(project, body.get("label_config"), params.get("context"))
    except (ConfigError, LabelingConfigError) as exc:
        raise bad_config(exc) from None
    if ctx.interactive and not ctx.context_prompt:
        # An annotator touched a smart tag, not the prompt: suggest nothing rather than overwrite their work.
        results = [predictor().empty(ctx) for _ in tasks]
    elif ctx.interactive and len(tasks) == 1:
        mark_interactive()
        # Label Studio shows an annotator the status of a failed call, but drops an error entry silently.
        try:
            results = [predictor().predict(ctx, tasks[0])]
        except TaskError as exc:
            raise ApiError(exc.status, str(exc)) from None
    elif len(tasks) >= backend().settings.batch_min_tasks and not ctx.interactive:
        return predict_batch(ctx, tasks)
    else:
        results = predictor().predict_many(ctx, tasks)
    return {"results": results, "model_version": ctx.model_version}


def predict_batch(ctx: PredictionContext, tasks: list[dict]):
    """Answer from the cache when every task is there; otherwise start a job and answer at once."""
    if ctx.prompt is None:  # every task would fail the same way: say so now, without a job
        return {"results": predictor().predict_many(ctx, tasks), "model_version": ctx.model_version}
    if predictor().cached_predictions(ctx, tasks[:1]) is not None:
        cached = predictor().cached_predictions(ctx, tasks)
        if cached is not None:
            return {"results": cached, "model_version": ctx.model_version}
    blocker = batch_blocker(ctx, tasks)
    if blocker:
        current_app.logger.warning("%d tasks predicted in the request, not as a job: %s", len(tasks), blocker)
        return {"results": predictor().predict_many(ctx, tasks), "model_version": ctx.model_version}
    return {"results": [], "model_version": ctx.model_version, "job": queue_job(ctx, tasks)}


def queue_job(ctx: PredictionContext, tasks: list[dict]) -> str:
    try:
        return start_job(backend(), ctx, tasks)
    except QueueUnavailable as exc:
        raise ApiError(503, str(exc)) from None


@bp.post("/webhook")
def webhook():
    body = json_object()
    action = body.get("action")
    auto_predict = action == "TASKS_CREATED" and backend().settings.auto_predict_on_import
    if action not in PROMPT_EVENTS and not auto_predict:
        return {"status": "Unknown event"}
    project_info = optional_object(body, "project")
    project = project_id_of(project_info)
    if project is None:
        raise ApiError(400, f"{action} without project.id")
    try:
        if auto_predict:
            return predict_new_tasks(project, project_info.get("label_config"), body.get("tasks"))
        annotation = optional_object(body, "annotation")
        return predictor().remember_prompt(project, project_info.get("label_config"), annotation)
    except (ConfigError, LabelingConfigError) as exc:
        raise bad_config(exc) from None


def predict_new_tasks(project: str, label_config: str | None, tasks: object):
    """AUTO_PREDICT_ON_IMPORT: tasks just imported into Label Studio become a batch job at once."""
    tasks = (
        [task for task in tasks if isinstance(task, dict) and isinstance(task.get("data"), dict)]
        if isinstance(tasks, list)
        else []
    )
    if not tasks:
        return {"status": "ok", "detail": "no tasks with data in the event"}
    ctx = predictor().context(project, label_config, None)
    reason = "no prompt for this project yet" if ctx.prompt is None else batch_blocker(ctx, tasks)
    if reason:
        current_app.logger.warning("project %s: %d new tasks not predicted: %s", project, len(tasks), reason)
        return {"status": "skipped", "detail": reason}
    return {"status": "ok", "job": queue_job(ctx, tasks), "model_version": ctx.model_version}


@bp.get("/versions")
def versions():
    project = project_id_of(request.args.get("project"))
    return {"versions": predictor().store.versions(project) if project else []}


@bp.get("/jobs")
def jobs():
    project = request.args.get("project")
    try:
        limit = min(max(int(request.args.get("limit", 50)), 1), 1000)
    except ValueError:
        raise ApiError(400, "limit must be a whole number") from None
    return {"jobs": [status.as_dict() for status in backend().jobs.recent(project_id_of(project), limit)]}


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    return found(backend().jobs.status(job_id), job_id).as_dict()


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    return found(cancel_job(backend(), job_id), job_id).as_dict()


def found(status: JobStatus | None, job_id: str) -> JobStatus:
    if status is None:
        raise ApiError(404, f"no job {job_id} (jobs are kept {backend().settings.job_ttl} s)")
    return status


@bp.get("/metrics")
def metrics():
    backend().metrics.flush()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(predictor().store, queue_key(backend().settings)))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
