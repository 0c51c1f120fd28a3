"""``/improvements``: refine a project's prompt from its ground truth, the use case of ``llm-backend improve``.

``POST /improvements`` runs the rounds within the request (it holds one of the process's
``EVALUATION_CONCURRENCY`` slots meanwhile) and answers 200 with the run; a run whose estimated cost is above
``BATCH_CONFIRM_USD`` (or unknown while it is set) is refused with 400 unless the body says ``"confirm": true``,
as ``llm-backend batch`` refuses without a terminal.  ``GET /improvements/<id>`` reads a run again,
``GET /improvements?project=<id>`` lists a project's runs, newest first.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from api.evaluations import scoring, whole_number
from api.requests import json_object
from api.state import services
from shared.domain.errors import InvalidRequest
from shared.improvement import ImprovementRequest, Improvements

bp = Blueprint("improvements", __name__)


def _improvements() -> Improvements:
    return Improvements(services())


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be true or false")
    return value


def improvement_request(body: dict[str, Any]) -> ImprovementRequest:
    if "project" not in body:
        raise InvalidRequest("project is required: the Label Studio project id")
    teacher = body.get("teacher_model")
    if teacher is not None and (not isinstance(teacher, str) or not teacher):
        raise InvalidRequest("teacher_model must be a model name")
    share = body.get("train_share", 0.5)
    if isinstance(share, bool) or not isinstance(share, int | float):
        raise InvalidRequest("train_share must be a number above 0 and below 1 (0.5: half the tasks to learn from)")
    return ImprovementRequest(
        project=whole_number(body["project"], "project"),
        rounds=whole_number(body.get("rounds", 1), "rounds"),
        teacher_model=teacher,
        apply=_flag(body, "apply"),
        train_share=float(share),
    )


@bp.post("/improvements")
def create_improvement() -> ResponseReturnValue:
    body = json_object()
    wanted = improvement_request(body)
    confirm = _flag(body, "confirm")
    improvements = _improvements()
    with scoring():
        plan = improvements.plan(wanted)
        reason = plan.confirmation(improvements.services.settings.batch_confirm_usd)
        if reason and not confirm:
            raise InvalidRequest(f'not started: {reason}; send "confirm": true to run it anyway')
        return improvements.run(plan).as_dict()


@bp.get("/improvements")
def list_improvements() -> ResponseReturnValue:
    if not request.args.get("project"):
        raise InvalidRequest("project is required: /improvements?project=<Label Studio project id>")
    project = whole_number(request.args["project"], "project")
    limit = min(whole_number(request.args.get("limit", 20), "limit"), 100)
    return {"improvements": [run.summary() for run in _improvements().recent(project, limit)]}


@bp.get("/improvements/<run_id>")
def get_improvement(run_id: str) -> ResponseReturnValue:
    return _improvements().get(run_id).as_dict()
