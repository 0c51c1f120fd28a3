"""``/evaluations`` (score a prompt against the ground truth, compare versions) and ``/estimate`` (a batch's
tokens, cost and duration before it runs): the same use cases as ``llm-backend eval`` and ``estimate``.

``POST /evaluations`` answers 200 with the scored run, or 202 when it first predicts: the run then waits for
its batch job, and ``GET /evaluations/<id>`` scores it once the job has finished.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from api.requests import json_object
from api.state import services, state
from shared.domain.errors import InvalidRequest
from shared.domain.evaluation.calibration import DEFAULT_PRECISIONS
from shared.domain.evaluation.run import RunState
from shared.estimation import estimate_project
from shared.evaluation import EvaluationRequest, Evaluations
from shared.reports.evaluation_html import render_html

bp = Blueprint("evaluations", __name__)

# The HTML report shows text from Label Studio (labels, task ids) that its own escaping keeps inert; should any
# slip through, the browser runs no script and loads nothing: only its inline style is allowed (its pictures are
# inline SVG).
REPORT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def scoring() -> AbstractContextManager[None]:
    """A slot of this process's EVALUATION_CONCURRENCY, held while a run reads and scores a project (its memory
    grows with the project's size): 429 at once when all are taken."""
    return state().evaluation_slots.hold()


def whole_number(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidRequest(f"{name} must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise InvalidRequest(f"{name} must be at least {minimum}")
    return number


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InvalidRequest(f"{name} must be a list of names")
    return tuple(value)


def _precisions(value: Any) -> tuple[float, ...]:
    if value is None:
        return DEFAULT_PRECISIONS
    if not isinstance(value, list) or not value:
        raise InvalidRequest("precisions must be a list of target precisions, e.g. [0.9, 0.95, 0.99]")
    return tuple(value)


def evaluation_request(body: dict[str, Any]) -> EvaluationRequest:
    if "project" not in body:
        raise InvalidRequest("project is required: the Label Studio project id")
    version = body.get("version")
    if version is not None and (not isinstance(version, str) or not version):
        raise InvalidRequest("version must be a model version string")
    return EvaluationRequest(
        project=whole_number(body["project"], "project"),
        version=version,
        compare=_strings(body["compare"], "compare") if body.get("compare") is not None else (),
        predict=bool(body.get("predict", False)),
        limit=whole_number(body["limit"], "limit") if body.get("limit") is not None else None,
        controls=_strings(body["controls"], "controls") if body.get("controls") is not None else None,
        precisions=_precisions(body.get("precisions")),
    )


@bp.post("/evaluations")
def create_evaluation() -> ResponseReturnValue:
    wanted = evaluation_request(json_object())
    with scoring():
        run = Evaluations(services()).start(wanted)
    return run.as_dict(), 202 if run.state == RunState.PREDICTING else 200


@bp.get("/evaluations")
def list_evaluations() -> ResponseReturnValue:
    project = whole_number(request.args.get("project"), "project") if request.args.get("project") else None
    if project is None:
        raise InvalidRequest("project is required: /evaluations?project=<Label Studio project id>")
    limit = min(whole_number(request.args.get("limit", 20), "limit"), 100)
    return {"evaluations": [run.summary() for run in Evaluations(services()).recent(project, limit)]}


@bp.get("/evaluations/<run_id>")
def get_evaluation(run_id: str) -> ResponseReturnValue:
    evaluations = Evaluations(services())
    run = evaluations.get(run_id)
    if run.state == RunState.PREDICTING:  # scored here once its job has finished: the project is read again
        with scoring():
            run = evaluations.finish(run)
    if request.args.get("format") == "html":
        return Response(render_html(run), mimetype="text/html", headers={"Content-Security-Policy": REPORT_POLICY})
    return run.as_dict()


@bp.get("/estimate")
def estimate() -> ResponseReturnValue:
    if not request.args.get("project"):
        raise InvalidRequest("project is required: /estimate?project=<Label Studio project id>")
    project_id = whole_number(request.args["project"], "project")
    scope = request.args.get("filter", "unlabeled")
    if scope not in ("unlabeled", "all"):
        raise InvalidRequest("filter must be unlabeled or all")
    workers = whole_number(request.args["workers"], "workers") if request.args.get("workers") else None
    return estimate_project(services(), project_id, scope == "unlabeled", workers).as_dict()
