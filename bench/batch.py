"""Scenario 1: batch throughput — N tasks through /predict → Celery workers → bulk push-back.

Label Studio is the recording stand-in (``tests/fakes/label_studio.py``), not a real Label Studio.
The LLM is the fake OpenAI server (``tests/fakes/openai_server``) at 500 ms ± 100 ms per call. ``CACHE_TTL=0``
everywhere, and each run uses a project of its own (so neither the cache nor the exactly-once ledger skips any
work).

The sequential baseline (the reference backend: one LLM call at a time inside ``/predict``) is
measured in the same run on a subset: ``/predict`` called with one task at a time, one after the
other, against the same fake LLM; its mean time per task is extrapolated linearly to N tasks.
"""

from __future__ import annotations

import json
import time

from bench.harness import API_COMMAND, PROJECT_TS, Api, Stack, batch_body, log, task_text, tree_cpu

LLM_DELAY, LLM_JITTER = 0.5, 0.1


def sequential_baseline(stack: Stack, api: Api, count: int, project: int, tasks_total: int) -> dict:
    label_studio = stack.label_studio()
    api.setup_project(project, label_studio)
    times = []
    for i in range(count):
        body = {
            "tasks": [{"id": i, "data": {"text": task_text(i, "baseline ")}}],
            "project": f"{project}.{PROJECT_TS}",
        }
        payload, elapsed = api.call("POST", "/predict", body)
        if not payload["results"] or "result" not in payload["results"][0]:
            raise RuntimeError(f"baseline task {i} was not predicted: {json.dumps(payload)[:300]}")
        times.append(elapsed)
    stack.drop_label_studio(label_studio)
    per_task = sum(times) / len(times)
    return {
        "measured_tasks": count,
        "seconds_per_task": per_task,
        "tasks_per_s": 1 / per_task,
        "extrapolated_to": tasks_total,
        "extrapolated_seconds": per_task * tasks_total,
        "method": "POST /predict with one task at a time, sequentially; mean per task × N",
    }


def batch_run(
    stack: Stack,
    api: Api,
    prefix: str,
    *,
    tasks: int,
    worker_processes: int,
    llm_concurrency: int,
    project: int,
    timeout: float,
) -> dict:
    label_studio = stack.label_studio()
    api.setup_project(project, label_studio)
    workers = stack.workers(prefix, worker_processes, concurrency=1, LLM_CONCURRENCY=llm_concurrency, CACHE_TTL=0)
    body = batch_body(project, tasks, held_by=label_studio)
    stack.fake.clear()
    cpu_before = sum(tree_cpu(w.process.pid) for w in workers)
    started = time.monotonic()
    payload, answered_in = api.call("POST", "/predict", body)
    job_id = payload.get("job")
    if not job_id:
        raise RuntimeError(f"/predict did not start a job: {json.dumps(payload)[:300]}")
    deadline = started + timeout
    status: dict = {}
    next_poll = 0.0
    while label_studio.count() < tasks:
        now = time.monotonic()
        if now > deadline:
            log(f"batch run timed out after {timeout:g} s: {label_studio.count()}/{tasks} predictions")
            break
        if now >= next_poll:
            status = api.job(job_id)
            next_poll = now + 0.5
            if status["state"] in ("failed", "partial") or (
                status["state"] == "done" and label_studio.count() >= tasks
            ):
                break
            for worker in workers:
                if worker.process.poll() is not None:
                    raise RuntimeError(f"a worker exited:\n{worker.log[-3000:]}")
        time.sleep(0.02)
    arrivals = sorted(label_studio.arrivals)
    cpu_used = sum(tree_cpu(w.process.pid) for w in workers) - cpu_before
    wait_until_done = time.monotonic() + 10
    while status.get("state") not in ("done", "failed", "partial") and time.monotonic() < wait_until_done:
        time.sleep(0.2)
        status = api.job(job_id)
    llm = stack.fake.stats()
    distinct, duplicated = label_studio.once_each()
    for worker in workers:
        stack.stop(worker)
    stack.drop_label_studio(label_studio)

    landed = len(arrivals)
    last = (arrivals[-1] - started) if arrivals else float("nan")
    first = (arrivals[0] - started) if arrivals else float("nan")
    steady = float("nan")
    if landed >= 10:
        lo, hi = arrivals[landed // 10], arrivals[(landed * 9) // 10 - 1]
        if hi > lo:
            steady = ((landed * 9) // 10 - landed // 10) / (hi - lo)
    return {
        "tasks": tasks,
        "worker_processes": worker_processes,
        "llm_concurrency": llm_concurrency,
        "predict_answered_s": answered_in,
        "first_prediction_s": first,
        "last_prediction_s": last,
        "tasks_per_s": landed / last if landed else 0.0,
        "steady_tasks_per_s": steady,
        "landed": landed,
        "distinct_tasks": distinct,
        "duplicated_tasks": duplicated,
        "job_state": status.get("state"),
        "job_done": status.get("done"),
        "job_failed": status.get("failed"),
        "llm_calls": llm["ok"],
        "llm_429": llm["rate_limited"],
        "llm_max_in_flight": llm["max_in_flight"],
        "worker_cpu_s": cpu_used,
        "worker_cpu_ms_per_task": 1000 * cpu_used / landed if landed else float("nan"),
    }


def run(stack: Stack, quick: bool) -> dict:
    tasks = 2000
    baseline_count = 20 if quick else 60
    concurrencies = [32, 100] if quick else [8, 32, 100, 200]
    processes = [1, 2]
    fake = stack.fake
    fake.configure(delay=LLM_DELAY, jitter=LLM_JITTER, rpm=0, tpm=0)
    prefix = stack.prefix("batch")
    api_env = {"CACHE_TTL": 0, "BATCH_CHUNK_SIZE": 100}
    api = stack.api(prefix, **api_env)
    log(f"batch: sequential baseline on {baseline_count} tasks")
    baseline = sequential_baseline(stack, api, baseline_count, project=100, tasks_total=tasks)
    log(
        f"batch: baseline {baseline['seconds_per_task'] * 1000:.0f} ms/task → "
        f"{baseline['extrapolated_seconds']:.0f} s for {tasks}"
    )
    runs = []
    project = 101
    for concurrency in concurrencies:
        for count in processes:
            expected = tasks / min(concurrency * count / LLM_DELAY, 400)
            log(f"batch: {tasks} tasks, {count} worker process(es), LLM_CONCURRENCY={concurrency}")
            result = batch_run(
                stack,
                api,
                prefix,
                tasks=tasks,
                worker_processes=count,
                llm_concurrency=concurrency,
                project=project,
                timeout=max(90.0, 4 * expected),
            )
            result["speedup"] = baseline["extrapolated_seconds"] / result["last_prediction_s"]
            runs.append(result)
            project += 1
            log(
                f"batch:   {result['tasks_per_s']:.1f} tasks/s, last at {result['last_prediction_s']:.1f} s, "
                f"speedup {result['speedup']:.1f}×, job {result['job_state']}"
            )
    stack.close_api(api)
    return {
        "scenario": "batch",
        "setup": {
            "tasks": tasks,
            "llm_delay_s": LLM_DELAY,
            "llm_jitter_s": LLM_JITTER,
            "label_studio": "recording stand-in (tests/fakes/label_studio.py), bulk import endpoint",
            "api": f"{API_COMMAND}; env " + " ".join(f"{k}={v}" for k, v in api_env.items()),
            "workers": "llm-backend worker --concurrency 1 (one prefork child) per worker process; env CACHE_TTL=0, "
            "LLM_CONCURRENCY as given",
        },
        "baseline": baseline,
        "runs": runs,
    }
