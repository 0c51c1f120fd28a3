"""Scenario ``fairness``: a small job of one project started while a big job of another runs, against a real
Label Studio 1.23.2 on the same machine (the one of ``bench/real_ls.py``).

One ``llm-backend worker`` with its defaults (2 prefork children here, ``LLM_CONCURRENCY=100``,
``BATCH_CHUNK_SIZE=100``, ``JOB_QUEUED_CHUNKS=2``); the LLM is the fake OpenAI server at 1 s, ``CACHE_TTL=0``.
First the big job runs alone (8,000 tasks of project A): its time is the reference.  Then it runs again on a
project of its own, and once ``UNDER_WAY`` of its predictions are in Label Studio, project B's Retrieve
Predictions on 40 tasks is sent: the figure is the time from that request until B's 40 predictions are in
Label Studio (its job's ``pushed`` count), and the big job's slowdown is its time with B against its time alone.
Every count is checked in Label Studio at the end.
"""

from __future__ import annotations

import json
import time

from bench.harness import CONFIG_XML, PROJECT_TS, Api, Stack, log
from bench.real_ls import CHILDREN, RealLabelStudio

BIG, SMALL = 8000, 40
UNDER_WAY = 750  # the big job's predictions in Label Studio when the small job is asked for (the 755)
LLM_DELAY = 1.0
TARGET_S = 8.0
POLL = 0.1


def start(api: Api, ls: RealLabelStudio, title: str, count: int) -> tuple[int, str, float]:
    """A project of ``count`` tasks connected to the backend, and its Retrieve Predictions sent: (project, job,
    when it was sent)."""
    project, listed = ls.project(title, count)
    api.setup_project(project, ls)  # type: ignore[arg-type]  (it needs .url and .token)
    body = json.dumps({"tasks": listed, "project": f"{project}.{PROJECT_TS}", "label_config": CONFIG_XML}).encode()
    sent = time.monotonic()
    payload, _ = api.call("POST", "/predict", body)
    if not payload.get("job"):
        raise RuntimeError(f"/predict did not start a job: {json.dumps(payload)[:300]}")
    return project, payload["job"], sent


def wait_pushed(api: Api, job_id: str, count: int, timeout: float) -> float:
    """When the job's ``pushed`` count reached ``count`` (monotonic seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.job(job_id)
        if status["pushed"] >= count:
            return time.monotonic()
        if status["state"] in ("failed", "partial", "cancelled"):
            raise RuntimeError(f"job {job_id} ended {status['state']}: {json.dumps(status)[:500]}")
        time.sleep(POLL)
    raise TimeoutError(f"job {job_id}: {api.job(job_id)['pushed']} of {count} pushed in {timeout:.0f} s")


def run(stack: Stack, quick: bool) -> dict:
    stack.fake.configure(delay=LLM_DELAY, jitter=0.0, rpm=0, tpm=0)
    prefix = stack.prefix("fairness")
    api = stack.api(prefix, CACHE_TTL=0)
    ls = RealLabelStudio(stack.workdir)
    workers = stack.workers(prefix, 1, concurrency=CHILDREN, CACHE_TTL=0)
    try:
        log(f"fairness: the {BIG}-task job alone, LLM at {LLM_DELAY:g} s")
        alone_project, alone_job, sent = start(api, ls, f"fairness alone {BIG}", BIG)
        alone_s = wait_pushed(api, alone_job, BIG, 900) - sent
        log(f"fairness:   alone: {alone_s:.1f} s")

        stack.fake.clear()
        big_project, big_job, big_sent = start(api, ls, f"fairness big {BIG}", BIG)
        under_way_at = wait_pushed(api, big_job, UNDER_WAY, 300)
        small_project, small_job, small_sent = start(api, ls, f"fairness small {SMALL}", SMALL)
        small_landed_at = wait_pushed(api, small_job, SMALL, 300)
        big_pushed_then = api.job(big_job)["pushed"]
        big_s = wait_pushed(api, big_job, BIG, 900) - big_sent
        small_s = small_landed_at - small_sent
        log(
            f"fairness:   the {SMALL}-task job landed {small_s:.1f} s after its request (the big job at "
            f"{big_pushed_then} of {BIG}); the big job took {big_s:.1f} s ({big_s / alone_s:.2f}x alone)"
        )
        projects = {"alone": alone_project, "big": big_project, "small": small_project}
        landed = {name: ls.prediction_count(project) for name, project in projects.items()}
        calls = stack.fake.in_flight()["ok"]
    finally:
        for worker in workers:
            stack.stop(worker)
        ls.close()
        stack.close_api(api)
    return {
        "scenario": "fairness",
        "setup": {
            "label_studio": "real Label Studio 1.23.2 (SQLite), same machine",
            "llm_delay_s": LLM_DELAY,
            "workers": f"1 llm-backend worker --concurrency {CHILDREN}, defaults (LLM_CONCURRENCY=100, "
            "BATCH_CHUNK_SIZE=100, JOB_QUEUED_CHUNKS=2), CACHE_TTL=0",
        },
        "big_tasks": BIG,
        "small_tasks": SMALL,
        "big_alone_s": alone_s,
        "big_with_small_s": big_s,
        "big_slowdown": big_s / alone_s,
        "big_pushed_when_small_asked": UNDER_WAY,
        "small_asked_after_s": under_way_at - big_sent,
        "small_landed_s": small_s,
        "big_pushed_when_small_landed": big_pushed_then,
        "target_s": TARGET_S,
        "landed_in_label_studio": landed,
        "llm_calls_big_and_small": calls,
    }
