"""End to end against a real Label Studio 1.23.2, driven through its API exactly as its UI does."""

from __future__ import annotations

import subprocess
import time
import uuid

import httpx
import pytest
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.estimation.pricing import DEFAULT_PRICES, TokenUsage, usage_cost
from tests.conftest import labeling_config
from tests.e2e.conftest import BASIC_AUTH, connect
from tests.e2e.label_studio_server import TOKEN
from tests.integration.processes import LLM_BACKEND

pytestmark = pytest.mark.timeout(900)  # the first test also installs and migrates Label Studio when not cached

PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
ANSWER = "Sarcastic\nGroceries"  # names a label of the sarcasm config and one of the receipts config


def task_data(config: str, marker: str, index: int) -> dict:
    text = f"{marker} task {index}"
    return {
        "evaluation": {"text": text},
        "sarcasm": {"text": text},
        "chat": {"dialogue": [{"role": "user", "content": text}, {"role": "assistant", "content": "Hello."}]},
        "receipts": {"image": PNG, "note": text},
    }[config]


def new_project(ls, config: str, count: int, marker: str | None = None):
    marker = marker or uuid.uuid4().hex[:10]
    project = ls.projects.create(title=f"{config} {marker}", label_config=labeling_config(config))
    if count:
        ls.projects.import_tasks(id=project.id, request=[task_data(config, marker, i) for i in range(count)])
    return project, marker


def retrieve_predictions(ls, project) -> None:
    ls.actions.create(id="retrieve_tasks_predictions", project=project.id, selected_items={"all": True, "excluded": []})


def predictions(ls, project) -> list[dict]:
    return [p.dict() for p in ls.predictions.list(project=project.id)]


def wait_for_predictions(ls, project, count: int, backend: dict, timeout: float = 180) -> list[dict]:
    """Wait for ``count`` predictions, then for every job of the project on ``backend`` to finish (a chunk
    finishes once its tasks are in Label Studio): past that nothing more lands, so a duplicate would show."""
    deadline = time.monotonic() + timeout
    while len(found := predictions(ls, project)) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} predictions after {timeout} s"
        time.sleep(0.5)
    while running := [job for job in jobs_of(backend, project) if job["state"] in ("queued", "running")]:
        assert time.monotonic() < deadline, f"jobs still running after {timeout} s: {running}"
        time.sleep(0.5)
    return predictions(ls, project)


def jobs_of(backend: dict, project) -> list[dict]:
    response = httpx.get(f"{backend['url']}/jobs", params={"project": project.id}, auth=backend["auth"], timeout=10)
    return response.json()["jobs"]


def task_ids(ls, project) -> list[int]:
    return sorted(task.id for task in ls.tasks.list(project=project.id))


def calls_for(fake_llm, marker: str) -> list:
    return [request for request in fake_llm.chat_requests if marker in str(request.body["messages"])]


def annotate_with_prompt(ls, task_id: int, prompt: str, to_name: str = "text"):
    result = [{"from_name": "prompt", "to_name": to_name, "type": "textarea", "value": {"text": [prompt]}}]
    return ls.annotations.create(id=task_id, result=result)


def test_backend_connects(ls, backend):
    project, _ = new_project(ls, "sarcasm", 1)
    connected = connect(ls, project, backend)
    assert connected.state == "CO", connected
    assert connected.model_version.startswith("gpt-3.5-turbo-")


TEMPLATES = {
    "evaluation": "Judge: {text}",
    "sarcasm": "Is this sarcastic? {text} Labels: {labels}",
    "chat": "Continue the dialogue:\n{dialogue}",
    "receipts": "Summarise the receipt ({note}); category from {labels}",
}


@pytest.mark.parametrize("config", sorted(TEMPLATES))
def test_retrieve_predictions_for_each_reference_config(ls, backend, fake_llm, config):
    fake_llm.reply = lambda messages, index: ANSWER
    project, marker = new_project(ls, config, 10)
    extra = {"default_prompt": TEMPLATES[config], "use_internal_prompt_template": False}
    version = connect(ls, project, backend, extra_params=extra).model_version

    retrieve_predictions(ls, project)

    found = wait_for_predictions(ls, project, 10, backend)
    assert sorted(p["task"] for p in found) == task_ids(ls, project)
    interface = LabelInterface(labeling_config(config))
    for prediction in found:
        assert prediction["model_version"] == version
        assert interface.validate_prediction(prediction, return_errors=True) == []
        values = {region["from_name"]: region["value"] for region in prediction["result"]}
        if config == "sarcasm":
            assert values["sentiment"] == {"choices": ["Sarcastic"]}
        if config == "receipts":
            assert values["category"] == {"choices": ["Groceries"]}
            assert values["summarization-response"] == {"text": [ANSWER]}
    assert len(calls_for(fake_llm, marker)) == 10


@pytest.fixture(scope="module")
def big_batch(ls, backend, llm_server):
    llm_server.fake.reset()
    llm_server.fake.reply = lambda messages, index: ANSWER
    project, marker = new_project(ls, "sarcasm", 300)
    extra = {"default_prompt": TEMPLATES["sarcasm"], "use_internal_prompt_template": False}
    version = connect(ls, project, backend, extra_params=extra).model_version
    started = time.monotonic()
    retrieve_predictions(ls, project)
    answered_in = time.monotonic() - started
    found = wait_for_predictions(ls, project, 300, backend)
    return {"project": project, "marker": marker, "version": version, "found": found, "answered_in": answered_in}


def test_batch_of_300_tasks_lands_once_each(ls, big_batch, llm_server):
    found = big_batch["found"]
    assert len(found) == 300
    assert sorted(p["task"] for p in found) == task_ids(ls, big_batch["project"]), "each on its own task, none twice"
    assert {p["model_version"] for p in found} == {big_batch["version"]}
    assert big_batch["answered_in"] < 100, "Label Studio would have given up"
    assert len(calls_for(llm_server.fake, big_batch["marker"])) == 300


def test_second_retrieve_predictions_costs_nothing(ls, backend, big_batch, llm_server):
    calls_before = len(calls_for(llm_server.fake, big_batch["marker"]))
    jobs_before = [job["id"] for job in jobs_of(backend, big_batch["project"])]
    assert jobs_before, "the first Retrieve Predictions made a job"
    retrieve_predictions(ls, big_batch["project"])  # Label Studio waits for the backend's answer
    assert [job["id"] for job in jobs_of(backend, big_batch["project"])] == jobs_before, "no new job"
    assert len(predictions(ls, big_batch["project"])) == 300
    assert len(calls_for(llm_server.fake, big_batch["marker"])) == calls_before


def test_interactive_preannotation_returns_the_answer(ls, backend, label_studio, fake_llm):
    fake_llm.reply = lambda messages, index: "It is sarcastic, clearly."
    project, marker = new_project(ls, "sarcasm", 1)
    backend_id = connect(ls, project, backend).id
    [task_id] = task_ids(ls, project)
    context = {
        "result": [
            {"from_name": "prompt", "to_name": "text", "type": "textarea", "value": {"text": ["Is it sarcastic?"]}}
        ]
    }

    response = httpx.post(
        f"{label_studio.url}/api/ml/{backend_id}/interactive-annotating",
        json={"task": task_id, "context": context},
        headers={"Authorization": f"Token {TOKEN}"},
        timeout=60,
    )

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    values = {region["from_name"]: region["value"] for region in data["result"]}
    assert values["response"] == {"text": ["It is sarcastic, clearly."]}
    [call] = calls_for(fake_llm, marker)
    assert call.body["messages"] == [
        {"role": "system", "content": "Task Directive: Is it sarcastic?"},
        {"role": "user", "content": f"Source Text: {marker} task 0"},
    ]
    assert predictions(ls, project) == [], "interactive answers are not stored as predictions"


def test_a_new_prompt_changes_the_next_batch_and_its_model_version(ls, backend, fake_llm):
    fake_llm.reply = lambda messages, index: ANSWER
    project, marker = new_project(ls, "sarcasm", 20)
    first_version = connect(ls, project, backend).model_version
    ids = task_ids(ls, project)

    annotate_with_prompt(ls, ids[0], "First prompt")  # Label Studio sends ANNOTATION_CREATED to /webhook
    retrieve_predictions(ls, project)
    first = wait_for_predictions(ls, project, 20, backend)
    first_versions = {p["model_version"] for p in first}
    assert len(first_versions) == 1 and first_versions != {first_version}, "the prompt bumped the version"
    assert all(
        call.body["messages"][0]["content"].endswith("Task Directive: First prompt")
        for call in calls_for(fake_llm, marker)
    )

    annotate_with_prompt(ls, ids[1], "Second prompt")
    fake_llm.reset()
    fake_llm.reply = lambda messages, index: ANSWER
    retrieve_predictions(ls, project)
    both = wait_for_predictions(ls, project, 40, backend)
    second_versions = {p["model_version"] for p in both} - first_versions
    assert len(second_versions) == 1
    calls = calls_for(fake_llm, marker)
    assert len(calls) == 20
    assert all(call.body["messages"][0]["content"].endswith("Task Directive: Second prompt") for call in calls)


def test_basic_auth_backend_works_end_to_end(ls, backend, fake_llm):
    """Every test here connects with basic auth; without the credentials Label Studio cannot connect at all."""
    fake_llm.reply = lambda messages, index: ANSWER
    assert httpx.get(f"{backend['url']}/health", timeout=5).status_code == 401
    project, marker = new_project(ls, "sarcasm", 10)
    with pytest.raises(ApiError) as refused:
        ls.ml.create(url=backend["url"], project=project.id, is_interactive=True, title="without credentials")
    assert refused.value.status_code == 400 and "authentication parameters" in str(refused.value.body)
    extra = {"default_prompt": TEMPLATES["sarcasm"], "use_internal_prompt_template": False}
    connected = connect(ls, project, backend, extra_params=extra)
    assert connected.state == "CO", connected
    assert (connected.auth_method, connected.basic_auth_user) == ("BASIC_AUTH", BASIC_AUTH[0])
    retrieve_predictions(ls, project)
    found = wait_for_predictions(ls, project, 10, backend)
    assert sorted(p["task"] for p in found) == task_ids(ls, project)
    assert len(calls_for(fake_llm, marker)) == 10


def test_cli_batch_predicts_a_project_and_sums_up(ls, backend, label_studio, fake_llm):
    fake_llm.reply = lambda messages, index: ANSWER
    project, marker = new_project(ls, "sarcasm", 30)
    extra = {"default_prompt": TEMPLATES["sarcasm"], "use_internal_prompt_template": False}
    version = connect(ls, project, backend, extra_params=extra).model_version
    labelled = [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Sarcastic"]}}]
    ls.annotations.create(id=task_ids(ls, project)[0], result=labelled)  # --filter unlabeled skips this task
    env = backend["env"] | {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": TOKEN}
    command = [LLM_BACKEND, "batch", "--project", str(project.id), "--wait"]

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr
    assert f"29 of 30 tasks, model version {version}" in result.stdout
    assert "tasks 29: done 29, failed 0, pushed 29" in result.stdout
    calls = [call for call in fake_llm.live_completions if marker in str(call.body["messages"])]
    tokens_in = sum(call.answer["usage"]["prompt_tokens"] for call in calls)
    tokens_out = 29 * 5  # the fake counts 4 characters a token: ANSWER has 19
    cost = usage_cost(DEFAULT_PRICES["gpt-3.5-turbo"], TokenUsage(tokens_in, tokens_out))
    assert len(calls) == 29
    assert f"tokens in {tokens_in}, out {tokens_out}, cached 0 of those in; estimated cost ${cost:.4f}" in result.stdout
    found = predictions(ls, project)
    assert len(found) == 29 and {p["model_version"] for p in found} == {version}
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to predict" in again.stdout


def test_tasks_imported_later_are_predicted_on_arrival(ls, backend, fake_llm):
    fake_llm.reply = lambda messages, index: ANSWER
    project, marker = new_project(ls, "sarcasm", 0)
    extra = {"default_prompt": TEMPLATES["sarcasm"], "use_internal_prompt_template": False}
    version = connect(ls, project, backend, extra_params=extra).model_version

    ls.projects.import_tasks(id=project.id, request=[task_data("sarcasm", marker, i) for i in range(20)])

    found = wait_for_predictions(ls, project, 20, backend, timeout=60)
    assert sorted(p["task"] for p in found) == task_ids(ls, project)
    assert {p["model_version"] for p in found} == {version}


def test_retrieve_predictions_through_the_batch_api(ls, backend, fake_llm):
    """Retrieve Predictions on 500 tasks of a project with ``batch_api: on`` in its extra params: the job's
    requests go to the provider's Batch API (the fake's), and 500 predictions land with the model version."""
    fake_llm.reply = lambda messages, index: ANSWER
    project, marker = new_project(ls, "sarcasm", 500)
    extra = {"default_prompt": TEMPLATES["sarcasm"], "use_internal_prompt_template": False, "batch_api": "on"}
    version = connect(ls, project, backend, extra_params=extra).model_version

    retrieve_predictions(ls, project)

    found = wait_for_predictions(ls, project, 500, backend, timeout=240)
    assert sorted(p["task"] for p in found) == task_ids(ls, project), "one prediction per task"
    assert {p["model_version"] for p in found} == {version}
    assert all(
        {r["from_name"]: r["value"] for r in p["result"]}["sentiment"] == {"choices": ["Sarcastic"]} for p in found
    )
    batch_calls = [c for c in fake_llm.batch_completions if marker in str(c.body["messages"])]
    assert len(batch_calls) == 500 and not calls_for(fake_llm, marker), "answered by the batch, no live call"
    [upload] = [u for u in fake_llm.uploads if marker in u.content.decode()]
    assert len(upload.lines()) == 500
