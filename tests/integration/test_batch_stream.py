"""``llm-backend batch`` starts predicting while it still reads the project's pages (issue #24, item 6).

A real ``llm-backend worker`` and the ``llm-backend batch`` command on the real Redis, against the recording
Label Studio stand-in, which answers the pages after the first two only once predictions were imported: a
command that read every page before starting its job would find the third page held, and Label Studio empty.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from shared.adapters.jobs import Jobs, JobState
from shared.domain.types import JobSnapshot
from tests.integration.processes import LLM_BACKEND, llm_backend_env
from tests.integration.test_batch_api_workers import BATCH_API, assert_asked_once_each
from tests.integration.test_push_outcomes import assert_one_llm_call_per_task
from tests.integration.test_worker import WORKER_SETTINGS, assert_once_each, stack  # noqa: F401

pytestmark = pytest.mark.prose_answers

TASKS = 1300  # pages of 500: the first two are the estimate's sample, the third is read while the job runs
HOLDING_THE_VERSION = (3, 1101)  # one in the sample, one after it


@pytest.mark.timeout(400)
def test_predictions_land_while_the_pages_are_read_each_task_once(
    stack,  # noqa: F811
    fake_label_studio,
    fake_llm,
    llm_server,
    redis_prefix,
):
    fake_label_studio.add_project(31, stack.config, project_tasks())
    sarcastic = [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Sarcastic"]}}]
    for task in HOLDING_THE_VERSION:
        fake_label_studio.add_prediction(31, task, stack.version, sarcastic)
    fake_label_studio.pages_before_import = 2
    worker = stack.worker()
    env = llm_backend_env(llm_server.url, redis_prefix, **WORKER_SETTINGS)

    run = subprocess.run(
        [LLM_BACKEND, "batch", "--project", "31", "--wait", "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=360,
    )

    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{worker.log}"
    assert (
        "tasks to predict: about 1299 of 1300 (1 labeled or holding this version), from a sample of the first 1000 "
        "tasks (the job's status counts them exactly)"
    ) in run.stdout
    pages = dict(fake_label_studio.page_log)
    assert sorted(pages) == [1, 2, 3]
    assert pages[3] > len(HOLDING_THE_VERSION), "predictions were imported before the last page was read"
    job_id = re.search(r"job ([0-9a-f]{32}): started", run.stdout).group(1)
    expected = TASKS - len(HOLDING_THE_VERSION)
    assert f"job {job_id}: {expected} of {TASKS} tasks" in run.stdout
    assert f"tasks {expected}: done {expected}, failed 0, pushed {expected}" in run.stdout
    status = stack.status(job_id)
    assert (status["state"], status["total"], status["done"], status["failed"], status["pushed"]) == (
        "done",
        expected,
        expected,
        0,
        expected,
    )
    assert_once_each(fake_label_studio, TASKS, stack.version, stack.config)
    assert_one_llm_call_per_task(fake_llm, expected)


@pytest.mark.timeout(400)
def test_a_job_that_may_go_through_the_batch_api_is_queued_once_every_page_is_in(
    stack,  # noqa: F811
    fake_label_studio,
    fake_llm,
    llm_server,
    redis_prefix,
):
    """The Batch API takes a job whole: one file of every task, no live call."""
    fake_label_studio.add_project(31, stack.config, project_tasks())
    worker = stack.worker(**BATCH_API)

    run = batch_command(llm_backend_env(llm_server.url, redis_prefix, **WORKER_SETTINGS, **BATCH_API))

    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{worker.log}"
    assert f"tasks {TASKS}: done {TASKS}, failed 0, pushed {TASKS}" in run.stdout and "mode batch_api" in run.stdout
    assert [len(upload.lines()) for upload in fake_llm.uploads] == [TASKS]
    assert fake_llm.live_completions == [] and fake_llm.chat_requests == []
    assert_asked_once_each(fake_llm, TASKS)
    assert_once_each(fake_label_studio, TASKS, stack.version, stack.config)


def project_tasks() -> list[dict]:
    return [{"id": i, "data": {"text": f"text {i} {'even' if i % 2 == 0 else 'odd'}"}} for i in range(TASKS)]


def batch_command(env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [LLM_BACKEND, "batch", "--project", "31", "--wait", "--yes"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=360)


SNAPSHOT = JobSnapshot(
    project="1", label_config="<View/>", extra_params={}, model_version="v", model="m", prompt="p", prompt_error=None
)


def test_an_open_job_is_not_settled_before_it_is_sealed(real_store):
    jobs = Jobs(real_store, ttl=600)
    job_id = jobs.create(SNAPSHOT, [], chunk_size=2, sealed=False)
    assert jobs.extend(job_id, [1, 2, 3], chunk_size=2)
    assert (jobs.chunk_count(job_id), jobs.chunk_task_ids(job_id, 1)) == (2, [3])
    jobs.add(job_id, "done", [1, 2, 3])
    assert [jobs.finish_chunk(job_id, index) for index in (0, 1)] == [JobState.QUEUED] * 2, "more may come"
    assert jobs.extend(job_id, [4], chunk_size=2)
    assert (jobs.chunk_count(job_id), jobs.status(job_id).total) == (3, 4)
    jobs.add(job_id, "done", [4])
    assert jobs.finish_chunk(job_id, 2) == JobState.QUEUED
    assert jobs.seal(job_id) == JobState.DONE, "sealed with every chunk finished: settled at once"
    assert not jobs.extend(job_id, [5], chunk_size=2)
    assert jobs.status(job_id).total == 4


def test_a_sealed_job_settles_at_its_last_chunk_and_a_cancelled_one_takes_no_more(real_store):
    jobs = Jobs(real_store, ttl=600)
    job_id = jobs.create(SNAPSHOT, [], chunk_size=2, sealed=False)
    assert jobs.extend(job_id, [1, 2], chunk_size=2)
    assert jobs.seal(job_id) == JobState.QUEUED
    jobs.add(job_id, "failed", [1, 2])
    assert jobs.finish_chunk(job_id, 0) == JobState.FAILED

    cancelled = jobs.create(SNAPSHOT, [], chunk_size=2, sealed=False)
    jobs.cancel(cancelled)
    assert not jobs.extend(cancelled, [1], chunk_size=2)
    assert jobs.chunk_count(cancelled) == 0
