"""Property-based tests: whatever arrives, the API answers 2xx/4xx with JSON, never a 500; a chunk of
tasks with any data never crashes its worker."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.store import ProjectSetup
from shared.services import Services
from tests.conftest import LS_TOKEN, labeling_config
from tests.integration.chunk_runs import run_chunk
from worker.chunks import ChunkRunner

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
configs = (
    st.sampled_from(["sarcasm", "chat", "receipts", "evaluation"]).map(labeling_config)
    | st.text(max_size=200)
    | st.sampled_from(
        [
            "<View>",
            "<View/>",
            "<View><Text name='t' value='$t'/></View>",
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><View>&a;</View>',
        ]
    )
)
task_data = st.dictionaries(st.sampled_from(["text", "dialogue", "image", "other"]), json_values, max_size=3)
tasks = (
    st.lists(
        st.fixed_dictionaries({"id": st.integers(0, 10**6) | json_values}, optional={"data": task_data | json_values}),
        max_size=4,
    )
    | json_values
)
regions = (
    st.lists(
        st.fixed_dictionaries(
            {"from_name": st.sampled_from(["prompt", "response", "x"]) | json_values},
            optional={"value": st.fixed_dictionaries({"text": json_values}) | json_values},
        ),
        max_size=3,
    )
    | json_values
)
projects = st.sampled_from(["7.1700000000", "7", "abc", "", "1.2.3"]) | json_values


def assert_clean(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)
    assert isinstance(response.get_json(), dict)


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "tasks": tasks,
            "label_config": configs,
            "project": projects,
            "params": st.fixed_dictionaries(
                {}, optional={"context": st.fixed_dictionaries({}, optional={"result": regions}) | json_values}
            )
            | json_values,
        },
    )
)
def test_predict_never_fails_with_500(client, fake_llm, body):
    assert_clean(client.post("/predict", json=body))


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "schema": configs,
            "project": projects,
            "hostname": json_values,
            "access_token": json_values,
            "extra_params": json_values,
        },
    )
)
def test_setup_never_fails_with_500(client, body):
    assert_clean(client.post("/setup", json=body))


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "action": st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "TASKS_CREATED"]) | json_values,
            "project": st.fixed_dictionaries(
                {}, optional={"id": st.integers(0, 99) | json_values, "label_config": configs}
            )
            | json_values,
            "annotation": st.fixed_dictionaries({}, optional={"result": regions}) | json_values,
        },
    )
)
def test_webhook_never_fails_with_500(client, body):
    assert_clean(client.post("/webhook", json=body))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_are_a_clean_4xx(client, raw):
    for path in ("/predict", "/setup", "/webhook"):
        response = client.post(path, data=raw, content_type="application/json")
        assert 400 <= response.status_code < 500 or response.status_code == 200
        assert isinstance(response.get_json(), dict)


@pytest.fixture
def runner(make_settings, store, fake_llm, fake_label_studio):
    settings = make_settings(batch_chunk_size=10, llm_max_retries=0, cache_ttl=0)
    store.save_setup("3", ProjectSetup(labeling_config("chat"), fake_label_studio.url, LS_TOKEN))
    store.save_prompt("3", "Answer")
    services = Services.build(settings, store)
    yield (
        services.projects,
        services.jobs,
        ChunkRunner(settings, services.projects, services.predictor, services.jobs),
        fake_label_studio,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(task_data, min_size=1, max_size=6))
def test_a_chunk_with_any_task_data_settles_every_task(runner, data):
    projects, jobs, chunk_runner, fake_label_studio = runner
    ctx = projects.context("3", None, None)
    tasks = [{"id": index, "data": item} for index, item in enumerate(data)]
    fake_label_studio.hold_tasks(3, tasks)
    job_id = jobs.create(projects.snapshot(ctx), [task["id"] for task in tasks], 10)
    outcome = run_chunk(chunk_runner, job_id, 0, attempt=0, owner="fuzz")
    status = jobs.status(job_id)
    assert outcome.retry_in is None
    assert status.state in ("done", "failed", "partial")
    assert status.done + status.failed == len(tasks)
