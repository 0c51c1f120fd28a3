"""Scenario ``elastic``: workers joining and leaving a running job, against a real Label Studio 1.23.2 (issue #25).

One ``llm-backend worker`` with its defaults (2 prefork children here, ``LLM_CONCURRENCY=100`` each) starts an
8,000-task job through Retrieve Predictions; the LLM (the fake OpenAI server) answers in 4 s, so the window and not the
CPU bounds the rate.  After ``ALONE`` seconds a second worker joins: the LLM's answer rate over ``RATE_SPAN`` seconds
before it joined and after it took its share is the first figure (target ≥ 1.6×).  Then the first worker's main
process gets SIGTERM, as Kubernetes, KEDA or ``docker stop`` send it: how long it took to exit (target < 30 s, within
``WORKER_DRAIN_SECONDS``), and how many LLM calls were made beyond one per task (``CACHE_TTL=0``, so every call
reaches the fake: target 0).  The job must end with every task's prediction in Label Studio once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from bench.harness import CONFIG_XML, PROJECT_TS, Stack, log
from bench.real_ls import CHILDREN, RealLabelStudio, Sampler
from shared.domain.config import setting_default

TASKS = 8000
LLM_DELAY = 4.0
LLM_JITTER = 0.2
ALONE = 40.0  # seconds the first worker runs alone
SETTLE = 12.0  # seconds the second worker gets to start and fill its windows before its rate counts
RATE_SPAN = 20.0  # seconds over which each call rate is measured
DRAIN_SECONDS = setting_default("worker_drain_seconds")


def rate(answered: list[tuple[float, int]], start: float, end: float) -> float:
    """LLM answers per second between ``start`` and ``end`` (seconds into the run), from the sampled counter."""
    inside = [(at, count) for at, count in answered if start <= at <= end]
    if len(inside) < 2:
        return float("nan")
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    return (c1 - c0) / (t1 - t0)


def run(stack: Stack, quick: bool) -> dict:
    assert stack.fake is not None
    stack.fake.configure(delay=LLM_DELAY, jitter=LLM_JITTER, rpm=0, tpm=0)
    prefix = stack.prefix("elastic")
    api = stack.api(prefix, CACHE_TTL=0)
    ls = RealLabelStudio(stack.workdir)
    try:
        project, listed = ls.project(f"elastic {TASKS}", TASKS)
        api.setup_project(project, ls)  # type: ignore[arg-type]  (it needs .url and .token, as the stand-in has)
        [first] = stack.workers(prefix, 1, concurrency=CHILDREN, CACHE_TTL=0)
        stack.fake.clear()
        body = json.dumps({"tasks": listed, "project": f"{project}.{PROJECT_TS}", "label_config": CONFIG_XML})
        started, started_wall = time.monotonic(), time.time()
        payload, _ = api.call("POST", "/predict", body.encode())
        job_id = payload["job"]
        sampler = Sampler(stack, api, job_id, started)

        time.sleep(max(0.0, ALONE - (time.monotonic() - started)))
        joined_at = time.monotonic() - started
        [second] = stack.workers(prefix, 1, concurrency=CHILDREN, CACHE_TTL=0)
        ready_at = time.monotonic() - started
        log(f"elastic: second worker ready {ready_at - joined_at:.1f} s after it was started")
        time.sleep(SETTLE + RATE_SPAN)

        signalled_at = time.monotonic() - started
        answered_at_signal = sampler.answered[-1][1]
        os.kill(first.process.pid, signal.SIGTERM)  # the main process only, as Kubernetes does
        try:
            first.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            first.kill()
        exited_in = time.monotonic() - started - signalled_at
        stack.stop(first)

        deadline = time.monotonic() + 600
        while sampler.status.get("pushed", 0) < TASKS and sampler.status.get("state") not in ("failed", "partial"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the job did not finish: {sampler.status}")
            time.sleep(0.2)
        finished_at = time.monotonic() - started
        time.sleep(1.0)
        sampler.stop()
        stack.stop(second)
        fake = stack.fake.stats()
        calls = fake["ok"]
        landed = ls.prediction_count(project)
    finally:
        ls.close()
        stack.close_api(api)

    before = rate(sampler.answered, joined_at - RATE_SPAN, joined_at)
    after = rate(sampler.answered, ready_at + SETTLE, ready_at + SETTLE + RATE_SPAN)
    result = {
        "scenario": "elastic",
        "setup": {
            "label_studio": "real Label Studio 1.23.2 (SQLite), same machine",
            "tasks": TASKS,
            "llm_delay_s": LLM_DELAY,
            "workers": f"llm-backend worker --concurrency {CHILDREN}, defaults (LLM_CONCURRENCY=100, "
            f"BATCH_CHUNK_SIZE=100, WORKER_DRAIN_SECONDS={DRAIN_SECONDS:g}), CACHE_TTL=0",
        },
        "second_joined_s": joined_at,
        "second_ready_s": ready_at,
        "rate_alone_per_s": before,
        "rate_two_per_s": after,
        "rate_ratio": after / before,
        "sigterm_s": signalled_at,
        "answered_before_sigterm": answered_at_signal,
        "exit_after_sigterm_s": exited_in,
        "exit_code": first.process.returncode,
        "job_finished_s": finished_at,
        "job": {key: sampler.status.get(key) for key in ("state", "done", "pushed", "failed")},
        "llm_calls": calls,
        "repeated_calls": calls - TASKS,
        # when the fake answered a task it had answered before, in seconds into the run (as sigterm_s)
        "repeated_at_s": [round(at - started_wall, 1) for at in fake["repeated_times"]],
        "landed_in_label_studio": landed,
        "answered_samples": sampler.answered,
    }
    log(
        f"elastic: {before:.1f} calls/s alone, {after:.1f} with two workers ({after / before:.2f}×); SIGTERM: exit in "
        f"{exited_in:.1f} s; {calls} LLM calls for {TASKS} tasks; {landed} predictions in Label Studio"
    )
    return result
