"""Jobs through the provider's Batch API with real ``llm-backend worker`` processes on the real Redis.

The fake OpenAI server answers the batches on its clock (``batch_turnaround`` seconds after they are
created); the worker polls them with a countdown chain, so no worker is busy while they run.  Whatever
happens (a worker killed, Redis restarted, lines failing, a batch expiring, a cancel), every task is pushed
exactly once or failed with its reason, and the LLM is never asked twice for a task.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from shared.domain.batch_requests import custom_id
from tests.integration.own_redis import job_on_own_redis, wait_for
from tests.integration.processes import (
    LLM_BACKEND,
)
from tests.integration.test_recovery import DEFAULTS
from tests.integration.test_worker import assert_once_each, stack  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.timeout(300), pytest.mark.prose_answers]

BATCH_API = {"BATCH_API": "on", "BATCH_API_POLL_FIRST": "0.5", "BATCH_API_POLL_MAX": "1"}


def assert_asked_once_each(fake_llm, count):
    assert fake_llm.asked_more_than_once() == {}, "the LLM is never asked twice for a task"
    assert len(fake_llm.completions) == count


def test_3000_tasks_in_two_batch_files_land_once_each_without_live_calls(stack, fake_label_studio, fake_llm):  # noqa: F811
    fake_llm.batch_turnaround = 3.0
    stack.worker(**BATCH_API, BATCH_API_MAX_REQUESTS="2000", BATCH_CHUNK_SIZE="100")
    job_id = stack.submit(3000)
    running = stack.wait(job_id, timeout=120, until=lambda status: len(status["batches"]) == 2)
    assert running["mode"] == "batch_api" and [b["requests"] for b in running["batches"]] == [2000, 1000]

    status = stack.wait(job_id, timeout=240)
    assert (status["state"], status["done"], status["pushed"], status["failed"]) == ("done", 3000, 3000, 0)
    assert [len(upload.lines()) for upload in fake_llm.uploads] == [2000, 1000]
    assert {batch["status"] for batch in status["batches"]} == {"completed"}
    assert fake_llm.live_completions == [] and fake_llm.chat_requests == []
    assert_asked_once_each(fake_llm, 3000)
    assert_once_each(fake_label_studio, 3000, stack.version, stack.config)
    assert status["cost_usd"] == pytest.approx(status["live_cost_usd"] / 2, abs=1e-6)


@pytest.mark.fault_recovery
def test_a_worker_killed_while_its_batch_runs(stack, fake_label_studio, fake_llm):  # noqa: F811
    """The broker would give the dead worker's poll message back only after an hour (the default visibility
    timeout): the watchdog sends the overdue poll again within BATCH_CLAIM_SECONDS."""
    fake_llm.batch_turnaround = 8.0
    settings = BATCH_API | {"BROKER_VISIBILITY_TIMEOUT": "3600"}
    worker = stack.worker(**settings)
    job_id = stack.submit(300)
    stack.wait(job_id, timeout=60, until=lambda status: len(status["batches"]) == 1)
    worker.kill()  # the process group, holding the poll's countdown message
    second = stack.worker(**settings)

    status = stack.wait(job_id, timeout=120)
    assert "its Batch API poll is overdue; sending it again" in second.log
    assert (status["state"], status["pushed"]) == ("done", 300)
    assert len(fake_llm.batches) == 1, "the batch was not submitted again"
    assert fake_llm.live_completions == []
    assert_asked_once_each(fake_llm, 300)
    assert_once_each(fake_label_studio, 300, stack.version, stack.config)


def test_failed_lines_and_an_expired_batch_go_live(stack, fake_label_studio, fake_llm):  # noqa: F811
    fake_llm.batch_turnaround, fake_llm.batch_expires_after = 6.0, 3.0  # half the lines done when it expires
    fake_llm.batch_line_failures = {custom_id(i): (400, f"line {i} refused") for i in (0, 1, 2)}
    stack.worker(**BATCH_API)
    job_id = stack.submit(100)

    status = stack.wait(job_id, timeout=120)
    assert (status["state"], status["pushed"], status["failed"]) == ("done", 100, 0)
    [batch] = status["batches"]
    assert batch["status"] == "expired" and batch["counts"]["failed"] == 3
    assert 0 < batch["counts"]["completed"] < 100
    assert len(fake_llm.batch_completions) == batch["counts"]["completed"]
    assert len(fake_llm.live_completions) == 100 - batch["counts"]["completed"]
    assert_asked_once_each(fake_llm, 100)
    assert_once_each(fake_label_studio, 100, stack.version, stack.config)


def test_cancel_mid_batch_cancels_the_provider_batch(stack, fake_label_studio, fake_llm, tmp_path):  # noqa: F811
    fake_llm.batch_turnaround = 60.0
    worker = stack.worker(**BATCH_API)
    job_id = stack.submit(100)
    stack.wait(job_id, timeout=60, until=lambda status: len(status["batches"]) == 1)

    cancelled = subprocess.run(
        [LLM_BACKEND, "jobs", "cancel", job_id], env=worker.env, capture_output=True, text=True, timeout=60
    )
    assert cancelled.returncode == 0, cancelled.stderr
    [batch] = fake_llm.batches.values()
    assert batch.status in ("cancelling", "cancelled")
    shown = subprocess.run([LLM_BACKEND, "jobs", "show", job_id], env=worker.env, capture_output=True, text=True)
    assert "cancelled  mode batch_api" in shown.stdout and f"batch {batch.id}: cancel" in shown.stdout
    time.sleep(3)  # polls come and go: none pushes or asks anything
    status = stack.status(job_id)
    assert (status["state"], status["pushed"]) == ("cancelled", 0)
    assert fake_label_studio.predictions_by_task() == {} and fake_llm.live_completions == []


@pytest.mark.fault_recovery
@pytest.mark.parametrize("timeouts", [{}, DEFAULTS], ids=["short-timeouts", "defaults"])
def test_redis_restarted_while_polling(own_redis, llm_server, fake_llm, tmp_path, timeouts):
    """Through `llm-backend up` (it restarts a worker that exits, as compose does), with a Redis that keeps
    what it acknowledged (AOF): the poll chain goes on after the restart."""
    fake_llm.reply = lambda messages, index: "Sarcastic"
    fake_llm.batch_turnaround = 10.0
    with job_on_own_redis(own_redis, llm_server.url, tmp_path, 52, **BATCH_API, **timeouts) as job:
        wait_for(lambda: len(job.status()["batches"]) == 1, 60, job.up)
        time.sleep(2)  # a poll or two
        own_redis.kill()
        time.sleep(2)
        own_redis.start()

        final = wait_for(lambda: (s := job.status())["state"] in ("done", "failed", "partial") and s, 180, job.up)
        assert (final["state"], final["pushed"], final["mode"]) == ("done", 200, "batch_api"), final
        by_task = job.label_studio.predictions_by_task()
        assert sorted(by_task) == list(range(200))
        assert {task: len(found) for task, found in by_task.items() if len(found) > 1} == {}
        assert len(fake_llm.batches) == 1 and fake_llm.live_completions == []
        assert fake_llm.asked_more_than_once() == {}
