"""/improvements over HTTP: the API in-process on the real Redis, the recording Label Studio stand-in, and the
fake LLM through the real ``openai`` client, recording every request the teacher got.

Project 43 holds 24 annotated reviews, 8 of each label; its prompt is a template (``{text}``).  The fake model
answers each review's label, except that it calls a Neutral review (a plain statement of fact) Positive unless
the prompt defines Neutral; told to "always answer Negative", it does.  The fake teacher answers the candidate
the test chose: the better prompt (it defines Neutral), the worse one, or one that drops ``{text}``.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import LS_TOKEN
from tests.integration.test_evaluations import CONFIG, choice

pytestmark = pytest.mark.prose_answers
PROJECT, SMALL = 43, 44
CURRENT = "Is this review Positive or Negative? {text}"
BETTER = "Is this review Positive, Negative or Neutral? Neutral: it only states facts. {text}"
WORSE = "Always answer Negative. {text}"
DROPS_TEXT = "Is this review Positive, Negative or Neutral? Neutral: it only states facts."
SAYINGS = {"Positive": "I love it, works great", "Negative": "It broke after a day", "Neutral": "It weighs 300 grams"}
LABELS = ["Positive", "Negative", "Neutral"]
TEACHER_OPENING = "You improve the instructions"


def review(task_id: int) -> str:
    label = LABELS[task_id % 3]
    return f"{SAYINGS[label]} (review-{task_id:03d})."


def labeled_tasks(first: int, count: int) -> list[dict]:
    return [
        {
            "id": task_id,
            "data": {"text": review(task_id)},
            "annotations": [
                {"id": 1000 + task_id, "result": choice(LABELS[task_id % 3]), "created_at": "2026-01-01T10:00:00Z"}
            ],
        }
        for task_id in range(first, first + count)
    ]


def is_teacher(messages: list[dict]) -> bool:
    return str(messages[0].get("content", "")).startswith(TEACHER_OPENING)


def model(candidate: str, structured: bool = False):
    """The fake model, answering in prose (or, ``structured``, the answer schema's JSON), and a teacher that
    answers ``candidate``."""

    def reply(messages: list[dict], index: int):
        if is_teacher(messages):
            return {"reasoning": "Neutral reviews were called Positive: define Neutral.", "prompt": candidate}
        content = json.dumps(messages)
        label = next(name for name, saying in SAYINGS.items() if saying in content)
        if "Always answer Negative" in content:
            label = "Negative"
        elif label == "Neutral" and "only states facts" not in content:
            label = "Positive"
        return {"response": label, "sentiment": label} if structured else label

    return reply


@pytest.fixture
def make_api(make_settings, make_client, real_store, redis_prefix, fake_label_studio):
    """The API with project 43 (24 annotated reviews) and 44 (15) set up against the stand-in."""
    fake_label_studio.add_project(PROJECT, CONFIG, labeled_tasks(1, 24), title="Reviews")
    fake_label_studio.add_project(SMALL, CONFIG, labeled_tasks(101, 15), title="Few reviews")

    def make(**overrides):
        defaults = {"use_internal_prompt_template": False, "default_prompt": CURRENT}
        settings = make_settings(redis_key_prefix=redis_prefix, **(defaults | overrides))
        client = make_client(settings, real_store)
        for project in (PROJECT, SMALL):
            setup = {
                "project": f"{project}.1",
                "schema": CONFIG,
                "hostname": fake_label_studio.url,
                "access_token": LS_TOKEN,
            }
            assert client.post("/setup", json=setup).status_code == 200
        return client

    return make


def teacher_requests(fake_llm) -> list[str]:
    return [
        json.dumps(request.body["messages"])
        for request in fake_llm.chat_requests
        if is_teacher(request.body["messages"])
    ]


def test_a_better_candidate_is_applied_and_no_validation_task_reaches_the_teacher(make_api, fake_llm, real_store):
    api = make_api()
    fake_llm.reply = model(BETTER)

    response = api.post("/improvements", json={"project": PROJECT, "apply": True})

    assert response.status_code == 200, response.json
    run = response.json
    assert run["state"] == "done" and len(run["train"]) == 12 and len(run["validation"]) == 12
    assert not set(run["train"]) & set(run["validation"])
    [asked] = teacher_requests(fake_llm)
    for task in run["validation"]:
        assert f"review-{task:03d}" not in asked
    wrong_on_train = [task for task in run["train"] if task % 3 == 2]
    assert wrong_on_train and all(f"review-{task:03d}" in asked for task in wrong_on_train)
    assert CURRENT in asked

    neutral_in_validation = sum(1 for task in run["validation"] if task % 3 == 2)
    assert run["validation_before"] == {"sentiment": pytest.approx(1 - neutral_in_validation / 12)}
    [candidate] = run["candidates"]
    assert candidate["prompt"] == BETTER and candidate["reasoning"].startswith("Neutral reviews were called Positive")
    assert candidate["validation_after"] == {"sentiment": 1.0} and candidate["rejected"] is None
    assert candidate["improved"] is True
    assert candidate["train_disagreements"] == sum(1 for task in run["train"] if task % 3 == 2)
    assert run["best"] == 1 and run["applied_version"]
    assert real_store.prompt(str(PROJECT)) == BETTER
    assert run["applied_version"] in api.get(f"/versions?project={PROJECT}").json["versions"]

    assert api.get(f"/improvements/{run['id']}").json == run
    [listed] = api.get(f"/improvements?project={PROJECT}").json["improvements"]
    assert listed["id"] == run["id"] and listed["applied_version"] == run["applied_version"]


def test_a_worse_candidate_is_not_applied(make_api, fake_llm, real_store):
    api = make_api()
    fake_llm.reply = model(WORSE)

    run = api.post("/improvements", json={"project": PROJECT, "apply": True}).json

    [candidate] = run["candidates"]
    assert candidate["overall_after"] < run["overall_before"] and candidate["improved"] is False
    assert run["best"] is None and run["applied_version"] is None
    assert "no candidate beat the current prompt on validation" in run["note"]
    assert real_store.prompt(str(PROJECT)) is None  # the prompt in force is still DEFAULT_PROMPT


def test_a_candidate_that_drops_a_template_variable_is_rejected_unscored(make_api, fake_llm, real_store):
    api = make_api()
    fake_llm.reply = model(DROPS_TEXT)

    run = api.post("/improvements", json={"project": PROJECT, "apply": True, "rounds": 2}).json

    assert [candidate["rejected"] for candidate in run["candidates"]] == [
        "it drops {text}: a candidate keeps the prompt's template variables"
    ] * 2
    assert all(candidate["validation_after"] == {} for candidate in run["candidates"])
    assert run["applied_version"] is None and real_store.prompt(str(PROJECT)) is None
    labeling = [r for r in fake_llm.chat_requests if not is_teacher(r.body["messages"])]
    assert not any(DROPS_TEXT in json.dumps(r.body["messages"]) for r in labeling)


@pytest.mark.parametrize(
    ("body", "overrides", "status", "error"),
    [
        ({"project": SMALL}, {}, 400, "the project has 15: annotate 5 more in Label Studio"),
        ({"project": 99}, {}, 400, "no Label Studio to read project 99 from"),
        (
            {"project": PROJECT},
            {"default_prompt": "Is this {review} Positive?"},
            400,
            "uses {review} but the task has no such field (available: labels, text); submit a prompt",
        ),
        ({"project": PROJECT, "teacher_model": "gpt-5"}, {}, 400, "the operator may add it to ALLOWED_MODELS"),
        ({"project": PROJECT, "rounds": 0}, {}, 400, "rounds must be at least 1"),
        ({"project": PROJECT, "train_share": 1}, {}, 400, "train_share is the share of the annotated tasks"),
        ({}, {}, 400, "project is required"),
        (
            {"project": PROJECT},
            {"batch_confirm_usd": 0.00001, "openai_model": "gpt-4o-mini"},
            400,
            'is above BATCH_CONFIRM_USD $0.00001; send "confirm": true to run it anyway',
        ),
    ],
)
def test_bad_requests_name_the_fix(make_api, fake_llm, body, overrides, status, error):
    fake_llm.reply = model(BETTER)
    response = make_api(**overrides).post("/improvements", json=body)

    assert response.status_code == status
    assert error in response.json["error"]
    assert not fake_llm.chat_requests  # refused before anything was spent


def test_confirm_runs_what_batch_confirm_usd_holds_back(make_api, fake_llm):
    fake_llm.reply = model(BETTER)
    api = make_api(batch_confirm_usd=0.00001, openai_model="gpt-4o-mini")

    run = api.post("/improvements", json={"project": PROJECT, "confirm": True}).json

    assert run["state"] == "done" and run["estimated_cost_usd"] > 0.00001
    assert run["cost_usd"] > 0 and run["candidates"][0]["cost_usd"] > 0
    assert run["applied_version"] is None  # not asked to apply


def test_a_provider_that_refuses_every_call_fails_the_run_and_says_why(make_api, fake_llm):
    api = make_api()
    fake_llm.fail_next(401, times=1000, message="Incorrect API key provided")

    response = api.post("/improvements", json={"project": PROJECT})

    assert response.status_code == 502 and "Incorrect API key provided" in response.json["error"]
    [listed] = api.get(f"/improvements?project={PROJECT}").json["improvements"]
    assert listed["state"] == "failed" and "Incorrect API key provided" in listed["error"]
    assert not teacher_requests(fake_llm)


def test_with_the_defaults_a_submitted_prompt_is_improved(make_api, fake_llm, real_store):
    """The internal template (the annotators' prompt inserted as it is) and structured answers, the defaults."""
    api = make_api(use_internal_prompt_template=True, default_prompt=None, output_mode="auto")
    submitted = "Is this review Positive or Negative?"
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": PROJECT, "label_config": CONFIG},
        "annotation": {"result": [{"from_name": "prompt", "to_name": "text", "value": {"text": [submitted]}}]},
    }
    assert api.post("/webhook", json=event).status_code == 200
    candidate = "Is this review Positive, Negative or Neutral? Neutral: it only states facts."
    fake_llm.reply = model(candidate, structured=True)

    run = api.post("/improvements", json={"project": PROJECT, "apply": True}).json

    assert run["prompt"] == submitted and run["overall_before"] < 1.0
    assert run["candidates"][0]["validation_after"] == {"sentiment": 1.0}
    assert run["applied_version"] and real_store.prompt(str(PROJECT)) == candidate
    labeling = [r for r in fake_llm.chat_requests if not is_teacher(r.body["messages"])]
    assert labeling and all(r.body["response_format"]["type"] == "json_schema" for r in labeling)
