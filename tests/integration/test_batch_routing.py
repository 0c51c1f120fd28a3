"""Which /predict requests become batch jobs, and the job status routes (real Redis as broker)."""

import pytest
import redis

from api.state import state_of
from tests.conftest import labeling_config, real_redis_url
from tests.fakes.label_studio import FakeLabelStudio

# The fake model answers in prose, as the reference's did (OUTPUT_MODE=text); structured modes: test_structured_api.py
pytestmark = pytest.mark.prose_answers

PROJECT = "21.1700000000"


def tasks(count, start=0):
    return [{"id": i, "data": {"text": f"text {i}"}} for i in range(start, start + count)]


def setup_project(client, hostname="http://ls.example", access_token="tok", prompt="Is it sarcastic?", project=PROJECT):
    config = labeling_config("sarcasm")
    body = {"project": project, "schema": config, "hostname": hostname, "access_token": access_token}
    version = client.post("/setup", json=body).json["model_version"]
    if prompt:
        event = {
            "action": "ANNOTATION_CREATED",
            "project": {"id": int(project.split(".")[0])},
            "annotation": {"result": [{"from_name": "prompt", "value": {"text": [prompt]}}]},
        }
        version = client.post("/webhook", json=event).json["model_version"]
    return config, version


def answer_sarcastic(fake_llm):
    fake_llm.reply = lambda messages, index: "Sarcastic"


def predict(client, config, task_list, context=None, project=PROJECT):
    body = {"tasks": task_list, "project": project, "label_config": config, "params": {"context": context}}
    return client.post("/predict", json=body)


def queued_messages(prefix):
    return redis.Redis.from_url(real_redis_url()).llen(f"{prefix}:celery:batch")


def test_several_tasks_become_a_job_answered_at_once(make_client, make_settings, real_store, redis_prefix, fake_llm):
    client = make_client(make_settings(redis_key_prefix=redis_prefix, batch_chunk_size=40), real_store)
    config, version = setup_project(client)

    response = predict(client, config, tasks(100))

    assert response.status_code == 200
    assert response.json["results"] == []
    job_id = response.json["job"]
    assert fake_llm.chat_requests == []
    assert queued_messages(redis_prefix) == 1, "one dispatch message; the worker queues the first chunks"
    status = client.get(f"/jobs/{job_id}").json
    assert status == {
        "id": job_id,
        "project": "21",
        "model_version": version,
        "state": "queued",
        "total": 100,
        "done": 0,
        "failed": 0,
        "pushed": 0,
        "errors": [],
        "created_at": status["created_at"],
        "finished_at": None,
        "model": "gpt-3.5-turbo",
        "tokens_in": 0,
        "tokens_out": 0,
        "tokens_cached": 0,
        "cost_usd": 0.0,
        "live_cost_usd": 0.0,
        "mode": "live",
        "batches": [],
        "priority": 1,
        "max_usd": None,
        "message": None,
    }
    assert [job["id"] for job in client.get("/jobs?project=21").json["jobs"]] == [job_id]
    assert client.get("/jobs?project=22").json == {"jobs": []}


def test_single_tasks_and_annotator_prompts_stay_synchronous(
    make_client, make_settings, real_store, redis_prefix, fake_llm
):
    client = make_client(make_settings(redis_key_prefix=redis_prefix), real_store)
    config, version = setup_project(client)
    single = predict(client, config, tasks(1))
    assert len(single.json["results"]) == 1 and single.json["results"][0]["model_version"] == version
    context = {"result": [{"from_name": "prompt", "to_name": "text", "value": {"text": ["typed"]}}]}
    interactive = predict(client, config, tasks(3), context)
    assert len(interactive.json["results"]) == 3
    assert queued_messages(redis_prefix) == 0
    assert client.get("/jobs").json == {"jobs": []}


def test_batch_threshold_is_configurable(make_client, make_settings, real_store, redis_prefix, fake_llm):
    client = make_client(make_settings(redis_key_prefix=redis_prefix, batch_min_tasks=5), real_store)
    config, _ = setup_project(client)
    assert len(predict(client, config, tasks(4)).json["results"]) == 4
    assert predict(client, config, tasks(5)).json["results"] == []


def test_fully_cached_batch_is_answered_with_all_results(
    make_client, make_settings, real_store, redis_prefix, fake_llm
):
    answer_sarcastic(fake_llm)
    client = make_client(make_settings(redis_key_prefix=redis_prefix), real_store)
    config, version = setup_project(client)
    # The same tasks opened one by one in another project with the same config and prompt fill the cache
    # (in this project Label Studio would hold them already, and not send them again).
    other = "22.1700000000"
    setup_project(client, project=other)
    for task in tasks(3):
        predict(client, config, [task], project=other)
    assert len(fake_llm.chat_requests) == 3

    response = predict(client, config, tasks(3))
    assert [len(entry["result"]) for entry in response.json["results"]] == [3, 3, 3]
    assert all(entry["model_version"] == version for entry in response.json["results"])
    partly = predict(client, config, tasks(4))
    assert partly.json["results"] == [] and "job" in partly.json
    assert len(fake_llm.chat_requests) == 3


def test_batch_without_a_prompt_says_so_at_once(make_client, make_settings, real_store, redis_prefix, fake_llm):
    client = make_client(make_settings(redis_key_prefix=redis_prefix), real_store)
    config, _ = setup_project(client, prompt=None)
    results = predict(client, config, tasks(3)).json["results"]
    assert [entry["error"][:10] for entry in results] == ["no prompt:"] * 3
    assert queued_messages(redis_prefix) == 0


def test_batch_without_label_studio_access_is_predicted_in_the_request(
    make_client, make_settings, real_store, redis_prefix, fake_llm, caplog
):
    answer_sarcastic(fake_llm)
    client = make_client(make_settings(redis_key_prefix=redis_prefix), real_store)
    config, _ = setup_project(client, hostname="", access_token="")
    results = predict(client, config, tasks(3)).json["results"]
    assert [len(entry["result"]) for entry in results] == [3, 3, 3]
    assert queued_messages(redis_prefix) == 0
    assert (
        "3 tasks answered in the request, not as a job: a job could not push predictions to Label Studio: "
        "no Label Studio URL and key: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY" in caplog.text
    )


def test_job_routes_answer_404_and_400(make_client, make_settings, real_store, redis_prefix):
    client = make_client(make_settings(redis_key_prefix=redis_prefix), real_store)
    missing = client.get("/jobs/nope")
    assert missing.status_code == 404 and "no job nope" in missing.json["error"]
    assert client.get("/jobs?limit=x").status_code == 400


def test_job_keeps_the_prompt_it_started_with(make_client, make_settings, real_store, redis_prefix, fake_llm):
    with FakeLabelStudio(token="tok") as label_studio:
        client = make_client(make_settings(redis_key_prefix=redis_prefix), real_store)
        config, _ = setup_project(client, hostname=label_studio.url)
        job_id = predict(client, config, tasks(3)).json["job"]
        setup_project(client, hostname=label_studio.url, prompt="A different prompt")
        jobs_store = state_of(client.application).services.jobs
        assert jobs_store.snapshot(job_id).prompt == "Is it sarcastic?"


def test_auto_predict_on_import_starts_a_job_for_new_tasks(make_client, make_settings, real_store, redis_prefix):
    event = {"action": "TASKS_CREATED", "project": {"id": 21}, "tasks": tasks(3, start=100) + [{"id": 9}]}
    off = make_client(make_settings(redis_key_prefix=redis_prefix), real_store)
    setup_project(off)
    assert off.post("/webhook", json=event).json == {"status": "Unknown event"}

    client = make_client(make_settings(redis_key_prefix=redis_prefix, auto_predict_on_import=True), real_store)
    response = client.post("/webhook", json=event).json
    assert response["status"] == "ok"
    status = client.get(f"/jobs/{response['job']}").json
    assert (status["total"], status["project"], status["state"]) == (3, "21", "queued")
    assert queued_messages(redis_prefix) == 1


def test_auto_predict_refuses_a_project_without_a_prompt_naming_the_fix(
    make_client, make_settings, real_store, redis_prefix
):
    client = make_client(make_settings(redis_key_prefix=redis_prefix, auto_predict_on_import=True), real_store)
    setup_project(client, prompt=None)
    event = {"action": "TASKS_CREATED", "project": {"id": 21}, "tasks": tasks(2)}
    response = client.post("/webhook", json=event)
    assert response.status_code == 400
    assert response.json["error"].startswith('project 21: no prompt: type one into the "prompt" TextArea')
    assert queued_messages(redis_prefix) == 0
    assert client.get("/jobs").json == {"jobs": []}


def test_auto_predict_refuses_a_project_without_label_studio_access_naming_the_fix(
    make_client, make_settings, real_store, redis_prefix
):
    client = make_client(make_settings(redis_key_prefix=redis_prefix, auto_predict_on_import=True), real_store)
    setup_project(client, hostname="", access_token="")
    event = {"action": "TASKS_CREATED", "project": {"id": 21}, "tasks": tasks(2)}
    response = client.post("/webhook", json=event)
    assert response.status_code == 400
    assert response.json == {
        "error": "a job could not push predictions to Label Studio: no Label Studio URL and key: set LABEL_STUDIO_URL "
        "and LABEL_STUDIO_API_KEY, or connect the backend from Label Studio (Settings → Model)"
    }
    assert queued_messages(redis_prefix) == 0
