"""Workers that join and leave mid-job (issue #25, item 3), with real ``llm-backend worker`` processes on the real
Redis, the fake LLM and the recording Label Studio stand-in over HTTP, and the defaults users run.

A worker sent SIGTERM on its main process (what ``docker stop``, Kubernetes and KEDA send) hands back at once what
its windows had not started, lets the calls in flight answer, pushes what they answered, and exits within
``WORKER_DRAIN_SECONDS``: no LLM call is made twice and every task lands once.  A worker started mid-job takes
chunks of it within seconds."""

from __future__ import annotations

import collections
import itertools
import os
import re
import signal
import subprocess
import time

import pytest

from shared.domain.config import setting_default
from tests.integration.test_recovery import DEFAULTS
from tests.integration.test_worker import assert_once_each, stack  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.fault_recovery, pytest.mark.timeout(300), pytest.mark.prose_answers]

DRAIN_SECONDS = setting_default("worker_drain_seconds")
TASKS = 240


def calls_per_task(fake_llm) -> collections.Counter:
    return collections.Counter(str(request.body["messages"]) for request in fake_llm.chat_requests)


@pytest.mark.parametrize("node_name", [None, "shared@%h"], ids=["own-names", "one-name-like-celery-default"])
def test_a_worker_sent_sigterm_mid_job_hands_back_drains_and_no_call_is_made_twice(
    stack,  # noqa: F811
    fake_label_studio,
    fake_llm,
    node_name,
):
    """Also with both workers given one node name, as two ``llm-backend worker`` without ``-n`` on one host are."""
    fake_llm.delay = 2.0  # each process: 4 calls in flight, the rest of its chunk of 20 queued in its window
    leaving = stack.worker(node_name, **DEFAULTS)
    job_id = stack.submit(TASKS)
    stack.wait(job_id, until=lambda status: status["done"] >= 40)
    staying = stack.worker(node_name, **DEFAULTS)
    stack.wait(job_id, until=lambda status: status["done"] >= 80)

    calls_before = len(fake_llm.chat_requests)
    os.kill(leaving.process.pid, signal.SIGTERM)  # the main process only, as Kubernetes and docker send it
    signalled = time.monotonic()
    try:
        leaving.process.wait(timeout=DRAIN_SECONDS + 10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit within {DRAIN_SECONDS + 10} s:\n{leaving.log[-3000:]}")
    exited_after = time.monotonic() - signalled

    status = stack.wait(job_id, timeout=120)
    calls = calls_per_task(fake_llm)
    print(f"exited {exited_after:.1f} s after SIGTERM; {calls_before} calls before it, {sum(calls.values())} in all")
    assert leaving.process.returncode == 0, leaving.log[-3000:]
    assert exited_after <= DRAIN_SECONDS, f"the drain took {exited_after:.1f} s"
    assert (status["state"], status["done"], status["pushed"]) == ("done", TASKS, TASKS)
    assert_once_each(fake_label_studio, TASKS, stack.version, stack.config)
    assert len(calls) == TASKS and max(calls.values()) == 1, "no task was asked of the LLM twice"
    handed_back = [int(count) for count in re.findall(r"(\d+) tasks not started handed back", leaving.log)]
    assert sum(handed_back) > 0, "the leaving worker's windows had tasks queued, and gave them back"
    assert "unanswered at WORKER_DRAIN_SECONDS" not in leaving.log
    assert "handed back" not in staying.log


def test_calls_slower_than_worker_drain_seconds_are_cut_off_and_their_tasks_handed_back(
    stack,  # noqa: F811
    fake_label_studio,
    fake_llm,
):
    """The drain ends at WORKER_DRAIN_SECONDS whatever the LLM does: the calls still open then die with the worker and
    their tasks are asked again by the others (their claims released at once), each task still lands once."""
    first_calls = itertools.count()
    fake_llm.delay = lambda messages: 30.0 if next(first_calls) < 8 else 0.2  # the leaving worker's first calls
    leaving = stack.worker(WORKER_DRAIN_SECONDS="2", **DEFAULTS)
    job_id = stack.submit(40)
    while len(fake_llm.chat_requests) < 8:
        time.sleep(0.1)
    stack.worker(**DEFAULTS)

    os.kill(leaving.process.pid, signal.SIGTERM)
    signalled = time.monotonic()
    leaving.process.wait(timeout=30)
    exited_after = time.monotonic() - signalled

    status = stack.wait(job_id, timeout=60)
    print(f"exited {exited_after:.1f} s after SIGTERM")
    assert exited_after < 15, "the worker did not wait for its 30 s calls"
    cut_off = [int(count) for count in re.findall(r"(\d+) of them unanswered at WORKER_DRAIN_SECONDS", leaving.log)]
    assert sum(cut_off) == 8, "each process's 4 calls were still open at the end of the drain"
    assert (status["state"], status["done"], status["pushed"]) == ("done", 40, 40)
    assert_once_each(fake_label_studio, 40, stack.version, stack.config)
    calls = calls_per_task(fake_llm)
    assert len(calls) == 40 and sum(calls.values()) == 40 + 8, "only the calls cut off were made again"


def test_a_worker_started_mid_job_takes_a_share_of_what_is_left_within_seconds(
    stack,  # noqa: F811
    fake_label_studio,
    fake_llm,
):
    fake_llm.delay = 1.0
    first = stack.worker(**DEFAULTS)
    job_id = stack.submit(TASKS * 2)
    stack.wait(job_id, until=lambda status: status["done"] >= 40)
    second = stack.worker(**DEFAULTS)
    joined = time.monotonic()
    second.wait_for_log("llm_backend.predict_chunk")  # how soon is a figure of bench/elastic.py, not asserted here
    took_after = time.monotonic() - joined
    assert stack.status(job_id)["state"] == "running", "the new worker took a chunk of the running job"

    status = stack.wait(job_id, timeout=180)
    assert (status["state"], status["done"], status["pushed"]) == ("done", TASKS * 2, TASKS * 2)
    assert_once_each(fake_label_studio, TASKS * 2, stack.version, stack.config)
    calls = calls_per_task(fake_llm)
    assert len(calls) == TASKS * 2 and max(calls.values()) == 1
    taken = [len(re.findall(r"predict_chunk\[[^\]]+\] received", process.log)) for process in (first, second)]
    print(f"the new worker took its first chunk {took_after:.1f} s after it was ready; chunks taken: {taken}")
    assert taken[1] >= 4, "the new worker took a share of the job's 24 chunks"
