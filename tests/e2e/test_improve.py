"""``llm-backend improve`` and ``POST /improvements`` against a real Label Studio 1.23.2: 24 reviews annotated
through its API, the prompt a template (``{text}``), the fake model and teacher of
``tests/integration/test_improvements.py`` (Neutral reviews called Positive until the prompt defines Neutral).
A worse candidate is not applied; a better one becomes the project's prompt, a new model version; no validation
task reaches the teacher; nothing is pushed to Label Studio.  The command runs on a Redis prefix of its own; the
API is the suite's backend, which Label Studio connects to with basic auth, on another: the prompt the command
applied is not the API's, which starts from the template again.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import httpx
import pytest

from tests.conftest import delete_prefix
from tests.e2e.conftest import connect
from tests.e2e.label_studio_server import TOKEN
from tests.integration.processes import LLM_BACKEND, llm_backend_env
from tests.integration.test_evaluations import CONFIG, choice
from tests.integration.test_improvements import BETTER, CURRENT, LABELS, SAYINGS, WORSE, is_teacher, model

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def reviews(ls, label_studio, llm_server):
    """A project of 24 annotated reviews (position ``p`` is a ``LABELS[p % 3]`` review) and the commands' env."""
    marker = uuid.uuid4().hex[:10]
    project = ls.projects.create(title=f"improve {marker}", label_config=CONFIG)
    texts = [f"{SAYINGS[LABELS[p % 3]]} ({marker} review-{p:03d})." for p in range(1, 25)]
    ls.projects.import_tasks(id=project.id, request=[{"text": text} for text in texts])
    ids = {p: task_id for p, task_id in enumerate(sorted(t.id for t in ls.tasks.list(project=project.id)), 1)}
    for position, task_id in ids.items():
        ls.annotations.create(id=task_id, result=choice(LABELS[position % 3]))
    prefix = f"llm-backend-e2e-improve-{marker}"
    env = llm_backend_env(
        llm_server.url,
        prefix,
        LABEL_STUDIO_URL=label_studio.url,
        LABEL_STUDIO_API_KEY=TOKEN,
        DEFAULT_PROMPT=CURRENT,
        USE_INTERNAL_PROMPT_TEMPLATE="0",
        OUTPUT_MODE="text",  # the fake model answers with a label, in prose
        ALLOWED_MODELS="gpt-4o",
    )
    try:
        yield {"project": project, "ids": ids, "marker": marker, "env": env}
    finally:
        delete_prefix(prefix)


def improve(reviews, *args: str, **env: str) -> subprocess.CompletedProcess:
    command = [LLM_BACKEND, "improve", "--project", str(reviews["project"].id), *args]
    environment = reviews["env"] | env
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300, input="")


def test_improve_applies_a_better_prompt_only(reviews, fake_llm, ls):
    marker, ids = reviews["marker"], reviews["ids"]
    position_of = {task_id: position for position, task_id in ids.items()}

    fake_llm.reply = model(WORSE)
    held = improve(reviews, "--apply", BATCH_CONFIRM_USD="0.00001", OPENAI_MODEL="gpt-4o-mini")
    assert held.returncode == 1 and not fake_llm.chat_requests  # no terminal to ask: not started
    assert re.search(
        r"not started: the estimated cost \$0\.\d+ is above BATCH_CONFIRM_USD \$0\.00001; pass --yes", held.stderr
    )
    # the teacher's answer is cached as any LLM answer: another teacher model, so the next run asks afresh
    worse = improve(reviews, "--apply", "--teacher-model", "gpt-4o")
    assert worse.returncode == 0, worse.stderr
    assert [r.body["model"] for r in fake_llm.chat_requests if is_teacher(r.body["messages"])] == ["gpt-4o"]
    assert "no candidate beat the current prompt on validation: it stays the project's prompt" in worse.stdout
    assert re.search(r"validation before: sentiment 0\.\d{3} \(overall", worse.stdout)

    fake_llm.reset()
    fake_llm.reply = model(BETTER)
    better = improve(reviews, "--apply", "--json")
    assert better.returncode == 0, better.stderr
    run = json.loads(better.stdout)
    assert run["prompt"] == CURRENT and run["candidates"][0]["prompt"] == BETTER
    assert run["candidates"][0]["validation_after"] == {"sentiment": 1.0}
    assert run["overall_before"] < 1.0 and run["best"] == 1 and run["applied_version"]
    teacher = [json.dumps(r.body["messages"]) for r in fake_llm.chat_requests if is_teacher(r.body["messages"])]
    assert len(teacher) == 1
    validation = [position_of[task_id] for task_id in run["validation"]]
    assert len(validation) == 12 and not any(f"{marker} review-{p:03d}" in teacher[0] for p in validation)
    wrong = [position_of[task_id] for task_id in run["train"] if position_of[task_id] % 3 == 2]  # the Neutral ones
    assert wrong and all(f"{marker} review-{p:03d}" in teacher[0] for p in wrong)

    again = json.loads(improve(reviews, "--json").stdout)  # the applied prompt is now the project's
    assert again["prompt"] == BETTER and again["model_version"] == run["applied_version"]
    assert again["validation_before"] == {"sentiment": 1.0} and again["candidates"] == []
    assert "answered every train task as the ground truth" in again["note"]
    assert not list(ls.predictions.list(project=reviews["project"].id))  # candidates are never pushed


def test_post_improvements_applies_a_better_prompt_and_shows_the_teacher_no_validation_task(
    reviews, backend, fake_llm, ls
):
    """Through the API, the project's prompt set per project (its connection's extra params)."""
    project, marker, ids = reviews["project"], reviews["marker"], reviews["ids"]
    position_of = {task_id: position for position, task_id in ids.items()}
    extra = {"default_prompt": CURRENT, "use_internal_prompt_template": False, "output_mode": "text"}
    connection = connect(ls, project, backend, extra_params=extra)
    fake_llm.reply = model(BETTER)

    run = improve_through_the_api(backend, project.id, apply=True)

    assert run["state"] == "done" and run["prompt"] == CURRENT and run["overall_before"] < 1.0
    assert run["model_version"] == connection.model_version, "the version Label Studio got from /setup"
    [candidate] = run["candidates"]
    assert candidate["prompt"] == BETTER and candidate["validation_after"] == {"sentiment": 1.0}
    assert candidate["improved"] is True and run["best"] == 1 and run["applied_version"]
    teacher = [json.dumps(r.body["messages"]) for r in fake_llm.chat_requests if is_teacher(r.body["messages"])]
    assert len(teacher) == 1
    train = [position_of[task_id] for task_id in run["train"]]
    validation = [position_of[task_id] for task_id in run["validation"]]
    assert len(validation) == 12 and sorted(train + validation) == sorted(ids)
    assert not any(f"{marker} review-{p:03d}" in teacher[0] for p in validation)
    wrong = [p for p in train if p % 3 == 2]  # the Neutral ones
    assert wrong and all(f"{marker} review-{p:03d}" in teacher[0] for p in wrong)

    again = improve_through_the_api(backend, project.id)  # the applied prompt is now the project's
    assert again["prompt"] == BETTER and again["model_version"] == run["applied_version"]
    assert again["validation_before"] == {"sentiment": 1.0} and again["candidates"] == []
    assert not list(ls.predictions.list(project=project.id))  # candidates are never pushed


def improve_through_the_api(backend: dict, project_id: int, **body: object) -> dict:
    response = httpx.post(
        f"{backend['url']}/improvements", json={"project": project_id, **body}, auth=backend["auth"], timeout=120
    )
    assert response.status_code == 200, response.text
    return response.json()
