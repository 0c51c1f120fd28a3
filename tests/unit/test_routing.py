"""The one routing decision: a case per row of the table in ``shared.domain.routing``'s docstring, checked against
that table, and what ``shared.routing.route`` reads of a prediction context."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

import shared.domain.routing as routing
from shared.adapters.label_studio import LabelStudioAccess
from shared.domain.errors import ConfigError, InvalidRequest
from shared.domain.routing import (
    NO_LABEL_STUDIO_URL_AND_KEY,
    Facts,
    Reason,
    Route,
    WayIn,
    decide,
    no_prompt_message,
)
from shared.projects import PredictionContext
from shared.routing import route

MIN = 2  # BATCH_MIN_TASKS's default
PROMPT_ERROR = 'no prompt: type one into the "prompt" TextArea and press Shift+Enter'
LS_PROBLEM = "Label Studio at http://10.0.0.5 is not used: a private address; set LABEL_STUDIO_URL"
OTHER_WAYS = [way for way in WayIn if way is not WayIn.PREDICT]

# A batch Label Studio sends with Retrieve Predictions, for a project ready for jobs; each row changes what it needs.
BATCH = Facts(
    way_in=WayIn.PREDICT,
    project="21",
    has_prompt=True,
    label_studio_problem=None,
    tasks=100,
    integer_ids=True,
    batch_min_tasks=MIN,
)
NO_PROMPT = {"has_prompt": False, "prompt_error": PROMPT_ERROR}
BLOCKERS = {
    Reason.NO_PROJECT: {"project": None},
    Reason.NO_LABEL_STUDIO: {"label_studio_problem": LS_PROBLEM},
    Reason.TASK_IDS: {"integer_ids": False},
}

# (row of the table, what differs from BATCH, the reason expected when the table names none)
CASES = [
    pytest.param(1, {"interactive": True, "context_prompt": False}, None, id="1-smart-tag"),
    pytest.param(2, {"interactive": True, "context_prompt": True, "tasks": 1}, None, id="2-annotator"),
    pytest.param(3, NO_PROMPT, None, id="3-predict-no-prompt"),
    pytest.param(4, {"tasks": MIN - 1}, None, id="4-opened-tasks"),
    *[pytest.param(5, blocked, reason, id=f"5-predict-{reason.name.lower()}") for reason, blocked in BLOCKERS.items()],
    pytest.param(6, {}, None, id="6-predict-batch"),
    *[pytest.param(7, {"way_in": way, **NO_PROMPT}, None, id=f"7-{way.name.lower()}-no-prompt") for way in OTHER_WAYS],
    *[
        pytest.param(8, {"way_in": way, **blocked}, reason, id=f"8-{way.name.lower()}-{reason.name.lower()}")
        for way in OTHER_WAYS
        for reason, blocked in BLOCKERS.items()
    ],
    *[pytest.param(9, {"way_in": way, "tasks": 1}, None, id=f"9-{way.name.lower()}-job") for way in OTHER_WAYS],
]


def table() -> dict[int, tuple[str, str]]:
    """The rows of the docstring's table: row number → (route, reason) as written there."""
    rows = re.findall(r"^\s+(\d+)\s{2,}.*\s([A-Z_]+)\s+([A-Z_]+|\(the blocker\))\s*$", routing.__doc__ or "", re.M)
    return {int(number): (route_name, reason_name) for number, route_name, reason_name in rows}


def test_the_table_has_the_rows_the_cases_cover():
    assert sorted(table()) == sorted({case.values[0] for case in CASES}) == list(range(1, 10))


@pytest.mark.parametrize(("row", "changes", "blocker"), CASES)
def test_each_row_of_the_table_decides_as_written(row, changes, blocker):
    decision = decide(replace(BATCH, **changes))

    route_name, reason_name = table()[row]
    assert decision.route is Route[route_name]
    assert decision.reason is (blocker if reason_name == "(the blocker)" else Reason[reason_name])
    assert decision.message


def test_an_annotators_request_is_answered_whatever_else_is_missing():
    lacking = replace(BATCH, interactive=True, context_prompt=True, project=None, label_studio_problem=LS_PROBLEM)
    assert decide(replace(lacking, integer_ids=False)).route is Route.ANSWER_NOW
    assert decide(replace(lacking, context_prompt=False)).route is Route.SUGGEST_NOTHING


def test_the_prompt_is_looked_at_before_the_count_and_the_blockers():
    assert decide(replace(BATCH, tasks=1, **NO_PROMPT)).reason is Reason.NO_PROMPT
    assert decide(replace(BATCH, project=None, **NO_PROMPT)).reason is Reason.NO_PROMPT
    few_and_blocked = replace(BATCH, tasks=1, project=None, label_studio_problem=LS_PROBLEM)
    assert decide(few_and_blocked).route is Route.ANSWER_OPENED, "opened tasks need no job, hence no push"


def test_blockers_are_named_in_order_project_label_studio_ids():
    everything_missing = replace(BATCH, way_in=WayIn.AUTO_PREDICT, project=None, label_studio_problem=LS_PROBLEM)
    assert decide(replace(everything_missing, integer_ids=False)).reason is Reason.NO_PROJECT
    assert decide(replace(everything_missing, project="21", integer_ids=False)).reason is Reason.NO_LABEL_STUDIO


def test_the_other_ways_in_queue_a_job_for_any_number_of_tasks():
    for way in OTHER_WAYS:
        assert decide(replace(BATCH, way_in=way, tasks=0, batch_min_tasks=0)).route is Route.QUEUE_JOB


@pytest.mark.parametrize(
    ("changes", "error", "says"),
    [
        pytest.param(NO_PROMPT, ConfigError, f"project 21: {PROMPT_ERROR}", id="no-prompt"),
        pytest.param(
            BLOCKERS[Reason.NO_LABEL_STUDIO],
            ConfigError,
            f"a job could not push predictions to Label Studio: {LS_PROBLEM}",
            id="no-label-studio",
        ),
        pytest.param(BLOCKERS[Reason.NO_PROJECT], InvalidRequest, '"project": "<id>.<timestamp>"', id="no-project"),
        pytest.param(BLOCKERS[Reason.TASK_IDS], InvalidRequest, 'not every task has an integer "id"', id="task-ids"),
    ],
)
def test_a_refusal_raises_its_error_with_the_message_naming_the_fix(changes, error, says):
    decision = decide(replace(BATCH, way_in=WayIn.AUTO_PREDICT, **changes))
    with pytest.raises(error) as raised:
        decision.raise_if_refused()
    assert str(raised.value) == decision.message
    assert says in decision.message


def test_a_decision_that_is_not_a_refusal_raises_nothing():
    decision = decide(BATCH)
    assert decision.raise_if_refused() is decision and not decision.refused


def test_the_same_reason_says_the_same_thing_whichever_way_in():
    messages = {
        reason: {decide(replace(BATCH, way_in=way, **changes)).message for way in WayIn}
        for reason, changes in [(Reason.NO_PROMPT, NO_PROMPT), *BLOCKERS.items()]
    }
    assert all(len(said) == 1 for said in messages.values()), messages


def test_the_no_prompt_message_without_a_known_cause_still_names_the_fix():
    assert (
        no_prompt_message("21", None)
        == "project 21: no prompt: submit one in the prompt TextArea in Label Studio, or set DEFAULT_PROMPT"
    )
    assert no_prompt_message(None, PROMPT_ERROR) == PROMPT_ERROR


def context(**fields) -> PredictionContext:
    """A context with what routing reads of it; the rest (settings, parsed config) plays no part in the decision."""
    values = {
        "project": "21",
        "label_config": "<View/>",
        "extra_params": {},
        "config": None,
        "spec": None,
        "model_version": "v1",
        "prompt": "Is it sarcastic?",
        "prompt_error": None,
        "access": LabelStudioAccess(url="http://ls.example", api_key="tok"),
        "interactive": False,
        "context_prompt": False,
    }
    return PredictionContext(**{**values, **fields})


def tasks(*ids) -> list[dict]:
    return [{"id": task_id, "data": {"text": "x"}} for task_id in ids]


def test_route_reads_the_context_and_the_tasks():
    assert route(context(), WayIn.PREDICT, tasks(1, 2), batch_min_tasks=MIN).route is Route.QUEUE_JOB
    assert route(context(), WayIn.PREDICT, tasks(1), batch_min_tasks=MIN).route is Route.ANSWER_OPENED
    assert route(context(), WayIn.PREDICT, tasks(1, "2"), batch_min_tasks=MIN).reason is Reason.TASK_IDS
    assert route(context(), WayIn.AUTO_PREDICT, tasks(1)).route is Route.QUEUE_JOB
    assert route(context(project=None), WayIn.JOB).reason is Reason.NO_PROJECT
    assert route(context(prompt=None, prompt_error=PROMPT_ERROR), WayIn.JOB).message == f"project 21: {PROMPT_ERROR}"
    interactive = context(interactive=True, context_prompt=True)
    assert route(interactive, WayIn.PREDICT, tasks(1), batch_min_tasks=MIN).reason is Reason.ANNOTATOR


def test_the_commands_and_jobs_name_no_tasks_and_have_label_studios_ids():
    for way in (WayIn.BATCH_COMMAND, WayIn.EVALUATION, WayIn.JOB):
        decision = route(context(), way)
        assert (decision.route, decision.reason) == (Route.QUEUE_JOB, Reason.BATCH)


def test_route_gives_the_contexts_reason_for_no_label_studio_and_one_message_when_it_has_none():
    refused = route(context(access=None, access_problem=LS_PROBLEM), WayIn.AUTO_PREDICT, tasks(1))
    assert refused.message == f"a job could not push predictions to Label Studio: {LS_PROBLEM}"
    unknown = route(context(access=None), WayIn.EVALUATION)
    assert unknown.message == f"a job could not push predictions to Label Studio: {NO_LABEL_STUDIO_URL_AND_KEY}"
