"""The Label Studio ML backend protocol: /health, /setup, /predict, /webhook, /versions."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from api.errors import ApiError
from api.requests import json_object, optional_object, tasks_of
from shared.config import ConfigError, decode_extra_params
from shared.errors import TaskError
from shared.labeling import LabelingConfigError
from shared.predictor import Predictor
from shared.store import ProjectSetup, project_id_of

MODEL_CLASS = "LLMInteractive"
PROMPT_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")

bp = Blueprint("ml_backend", __name__)


def predictor() -> Predictor:
    return current_app.extensions["llm_backend"]


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
            hostname=body.get("hostname") or None,
            access_token=body.get("access_token") or None,
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
        # Label Studio shows an annotator the status of a failed call, but drops an error entry silently.
        try:
            results = [predictor().predict(ctx, tasks[0])]
        except TaskError as exc:
            raise ApiError(exc.status, str(exc)) from None
    else:
        results = predictor().predict_many(ctx, tasks)
    return {"results": results, "model_version": ctx.model_version}


@bp.post("/webhook")
def webhook():
    body = json_object()
    action = body.get("action")
    if action not in PROMPT_EVENTS:
        return {"status": "Unknown event"}
    project_info = optional_object(body, "project")
    project = project_id_of(project_info)
    if project is None:
        raise ApiError(400, f"{action} without project.id")
    annotation = optional_object(body, "annotation")
    try:
        return predictor().remember_prompt(project, project_info.get("label_config"), annotation)
    except (ConfigError, LabelingConfigError) as exc:
        raise bad_config(exc) from None


@bp.get("/versions")
def versions():
    project = project_id_of(request.args.get("project"))
    return {"versions": predictor().store.versions(project) if project else []}
