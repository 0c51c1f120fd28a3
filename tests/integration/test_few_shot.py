"""Few-shot examples on every path, seen in the requests the fake OpenAI server records: interactive ``/predict``,
a live batch job's chunks and a Batch API job's input file.  Label Studio is the recording stand-in (over HTTP),
holding annotated notes on four topics; the stores are the real Redis.

Project 52: tasks 1-16 annotated with their topic (the ground truth), 17-20 not annotated.
"""

from __future__ import annotations

import json

import pytest

from shared.adapters.store import ProjectSetup
from shared.domain.prompts.few_shot import EXAMPLES_HEADING
from shared.services import Services
from tests.conftest import LS_TOKEN
from tests.fakes.topics import CONFIG, PROMPT, choice, notes
from tests.integration.chunk_runs import run_chunk
from worker.chunks import ChunkRunner

PROJECT = 52
NOTES = notes(20)
ANNOTATED = range(1, 17)


def ls_tasks() -> list[dict]:
    return [
        {
            "id": task_id,
            "data": {"text": NOTES[task_id - 1].text},
            "annotations": [{"id": 100 + task_id, "result": choice(NOTES[task_id - 1].topic)}]
            if task_id in ANNOTATED
            else [],
        }
        for task_id in range(1, 21)
    ]


def prompt_context() -> dict:
    return {"result": [{"from_name": "prompt", "to_name": "text", "type": "textarea", "value": {"text": [PROMPT]}}]}


def setup(client, fake_label_studio, **extra_params):
    body = {
        "project": f"{PROJECT}.1",
        "schema": CONFIG,
        "hostname": fake_label_studio.url,
        "access_token": LS_TOKEN,
        "extra_params": extra_params,
    }
    response = client.post("/setup", json=body)
    assert response.status_code == 200, response.json
    return response.json["model_version"]


def predict_interactively(client, task_id: int) -> dict:
    task = {"id": task_id, "data": {"text": NOTES[task_id - 1].text}}
    body = {"tasks": [task], "project": f"{PROJECT}.1", "params": {"context": prompt_context()}}
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.json
    return response.json


def examples_in(text: str) -> list[tuple[str, str]]:
    """The (input, answer) of each example in a message's text."""
    found = []
    for block in text.split("### Example ")[1:]:
        _number, rest = block.split("\nInput:\n", 1)
        given, answer = rest.split("\nAnswer:\n", 1)
        found.append((given, answer.split("\n\n", 1)[0]))
    return found


@pytest.fixture
def project(make_settings, make_client, real_store, redis_prefix, fake_label_studio, fake_llm):
    fake_label_studio.add_project(PROJECT, CONFIG, ls_tasks(), title="Notes")
    settings = make_settings(redis_key_prefix=redis_prefix)
    return make_client(settings, real_store)


def test_interactive_requests_carry_one_label_balanced_set_in_the_static_prefix(project, fake_label_studio, fake_llm):
    setup(project, fake_label_studio, few_shot_examples=4)

    predict_interactively(project, 17)
    predict_interactively(project, 18)

    first, second = (request.body["messages"] for request in fake_llm.chat_requests)
    assert first[0] == second[0], "the system message, examples included, is the same for both tasks"
    system, user = first[0]["content"], first[1]["content"]
    assert system.startswith(f"Task Directive: {PROMPT}") and EXAMPLES_HEADING in system
    shown = examples_in(system)
    assert sorted(json.loads(answer)["topic"] for _given, answer in shown) == ["Cooking", "Finance", "Sport", "Weather"]
    texts = {note.text: note.topic for note in NOTES[:16]}
    assert all(texts[given] == json.loads(answer)["topic"] for given, answer in shown), "each with its ground truth"
    assert user == f"Source Text: {NOTES[16].text}" and "Example" not in user, "the task's own data comes last"


def test_similar_examples_precede_the_task_and_never_include_it(project, fake_label_studio, fake_llm):
    setup(project, fake_label_studio, few_shot_examples=3, few_shot_strategy="similar")

    for task_id in [*ANNOTATED, 17]:
        predict_interactively(project, task_id)
        messages = fake_llm.chat_requests[-1].body["messages"]
        user = messages[-1]["content"]
        assert EXAMPLES_HEADING not in messages[0]["content"], "per-task examples stay out of the static prefix"
        shown = examples_in(user)
        assert len(shown) == 3 and user.endswith(f"Source Text: {NOTES[task_id - 1].text}")
        assert NOTES[task_id - 1].text not in [given for given, _answer in shown], f"task {task_id} saw itself"


def test_the_version_follows_k_the_strategy_and_the_pool_read_at_most_every_few_shot_refresh(
    project, make_settings, make_client, real_store, redis_prefix, fake_label_studio
):
    off = setup(project, fake_label_studio)
    fixed = setup(project, fake_label_studio, few_shot_examples=2)
    assert len({off, fixed, setup(project, fake_label_studio, few_shot_examples=3)}) == 3
    assert setup(project, fake_label_studio, few_shot_examples=2, few_shot_strategy="similar") != fixed
    assert setup(project, fake_label_studio, few_shot_examples=2) == fixed, "the same pool, the same version"

    fake_label_studio.tasks[PROJECT][16]["annotations"] = [{"id": 117, "result": choice(NOTES[16].topic)}]
    assert setup(project, fake_label_studio, few_shot_examples=2) == fixed, "the pool kept in Redis still serves"
    refreshing = make_client(make_settings(redis_key_prefix=redis_prefix, few_shot_refresh=0), real_store)
    assert setup(refreshing, fake_label_studio, few_shot_examples=2) not in (fixed, off), "read again: a new pool"


def test_a_live_job_sends_the_examples_of_the_pool_it_started_with(
    make_settings, real_store, redis_prefix, fake_label_studio, fake_llm
):
    fake_label_studio.add_project(PROJECT, CONFIG, ls_tasks())
    settings = make_settings(redis_key_prefix=redis_prefix, batch_chunk_size=2, few_shot_examples=2)
    services = Services.build(settings, real_store)
    real_store.save_setup(str(PROJECT), ProjectSetup(CONFIG, fake_label_studio.url, LS_TOKEN))
    real_store.save_prompt(str(PROJECT), PROMPT)
    ctx = services.projects.for_job(services.projects.context(str(PROJECT), None, None))
    job_id = services.jobs.create(services.projects.snapshot(ctx), [17, 18, 19, 20], settings.batch_chunk_size)
    # annotations change while the job runs: its chunks keep the pool (and the version) it started with
    for task in fake_label_studio.tasks[PROJECT][:16]:
        task["annotations"] = [{"id": 900 + task["id"], "result": choice("Sport")}]

    runner = ChunkRunner(settings, services.projects, services.predictor, services.jobs)
    for index in range(services.jobs.chunk_count(job_id)):
        run_chunk(runner, job_id, index, 0, "worker-a")
    services.close()

    sent = [request.body["messages"] for request in fake_llm.chat_requests]
    assert len(sent) == 4 and len({json.dumps(messages[0]) for messages in sent}) == 1
    topics = sorted(json.loads(answer)["topic"] for _given, answer in examples_in(sent[0][0]["content"]))
    assert len(topics) == 2 and len(set(topics)) == 2, "the label-balanced set of the pool read at the job's start"
    assert {p["model_version"] for p in fake_label_studio.predictions} == {ctx.model_version}


def test_a_batch_api_job_sends_the_same_messages_with_their_examples(
    make_settings, real_store, redis_prefix, fake_label_studio, fake_llm
):
    fake_label_studio.add_project(PROJECT, CONFIG, ls_tasks())
    settings = make_settings(
        redis_key_prefix=redis_prefix,
        batch_api="on",
        openai_model="gpt-4o-mini",
        few_shot_examples=3,
        few_shot_strategy="diverse",
    )
    services = Services.build(settings, real_store)
    real_store.save_setup(str(PROJECT), ProjectSetup(CONFIG, fake_label_studio.url, LS_TOKEN))
    real_store.save_prompt(str(PROJECT), PROMPT)
    ctx = services.projects.for_job(services.projects.context(str(PROJECT), None, None))
    task_ids = [3, 17, 18]  # an annotated task too: it never sees its own annotation
    job_id = services.jobs.create(services.projects.snapshot(ctx), task_ids, settings.batch_chunk_size)

    assert services.batch_jobs.begin(job_id) is True
    services.close()

    [upload] = fake_llm.uploads
    lines = {line["custom_id"]: line["body"]["messages"] for line in upload.lines()}
    assert len(lines) == 3
    for task_id in task_ids:
        data = {"text": NOTES[task_id - 1].text}
        messages, _output = services.predictor.request_for(ctx, data, task_id)
        [sent] = [m for m in lines.values() if m[-1]["content"].endswith(data["text"])]
        assert sent == messages, "the messages the live path sends"
        shown = examples_in(sent[-1]["content"])
        assert len(shown) == 3 and data["text"] not in [given for given, _answer in shown]


def test_a_pool_due_for_a_refresh_keeps_serving_while_label_studio_is_down(
    make_settings, make_client, real_store, redis_prefix, fake_label_studio, fake_llm
):
    fake_label_studio.add_project(PROJECT, CONFIG, ls_tasks())
    client = make_client(make_settings(redis_key_prefix=redis_prefix, few_shot_refresh=0), real_store)
    version = setup(client, fake_label_studio, few_shot_examples=2)
    fake_label_studio.available = False

    answered = predict_interactively(client, 17)

    assert answered["model_version"] == version
    assert len(examples_in(fake_llm.chat_requests[-1].body["messages"][0]["content"])) == 2


def test_few_shot_without_a_way_to_read_label_studio_is_refused_with_the_reason(project):
    body = {"project": f"{PROJECT}.1", "schema": CONFIG, "extra_params": {"few_shot_examples": 2}}

    response = project.post("/setup", json=body)

    assert response.status_code == 400
    assert response.json["error"].startswith("FEW_SHOT_EXAMPLES needs the project's annotations from Label Studio")
    assert "LABEL_STUDIO_URL" in response.json["error"]
