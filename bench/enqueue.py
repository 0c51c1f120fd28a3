"""Scenario 3: enqueue and memory.

* How long ``/predict`` takes to answer a Retrieve Predictions of 10,000 and 100,000 tasks (about
  120 characters of text each), measured at the client from the first byte sent to the answer read,
  with no worker consuming (so the job stays queued). Default settings (cache on, chunks of 100).
  Two warm-up requests of 1,000 tasks first, so both gunicorn processes have their connections.
* Redis memory per queued task: ``MEMORY USAGE`` of the job's keys (record, chunks) plus the growth
  of the broker queue, divided by the tasks; and ``INFO used_memory`` before and after, which also
  moves with other users of a shared Redis, so it is the rougher figure.
* Worker RSS (main process + prefork child, ``--concurrency 1``, ``LLM_CONCURRENCY=100``) after start,
  and after each 10,000-task batch with the fake LLM at 20 ms ± 10 ms, and the peak while working.
"""

from __future__ import annotations

import time

from bench.harness import (
    API_COMMAND,
    CONFIG_XML,
    LS_TOKEN,
    PROJECT_TS,
    PROMPT,
    Api,
    Stack,
    batch_body,
    log,
    percentiles,
    tree_rss,
)

PROJECT = 300
RSS_PROJECT = 310


def _job_bytes(stack: Stack, prefix: str, job_id: str) -> tuple[int, int]:
    keys = list(stack.redis.scan_iter(f"{prefix}:job:{job_id}*", count=1000))
    pipe = stack.redis.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(size or 0 for size in pipe.execute()), len(keys)


def _queue_bytes(stack: Stack, prefix: str) -> int:
    return stack.redis.memory_usage(f"{prefix}:celery:batch", samples=0) or 0


def _used_memory(stack: Stack) -> int:
    return int(stack.redis.info("memory")["used_memory"])


def enqueue_times(stack: Stack, api: Api, prefix: str, sizes: dict[int, int]) -> list[dict]:
    for warm in range(2):
        api.call("POST", "/predict", batch_body(PROJECT, 1000, salt=f"warm{warm} "))
    out = []
    for tasks, reps in sizes.items():
        runs = []
        for rep in range(reps):
            body = batch_body(PROJECT, tasks, salt=f"n{tasks}r{rep} ")
            queue_before, used_before = _queue_bytes(stack, prefix), _used_memory(stack)
            payload, seconds = api.call("POST", "/predict", body)
            used_after, queue_after = _used_memory(stack), _queue_bytes(stack, prefix)
            job_id = payload.get("job")
            if not job_id:
                raise RuntimeError(f"/predict of {tasks} tasks started no job: {str(payload)[:300]}")
            job_bytes, keys = _job_bytes(stack, prefix, job_id)
            runs.append(
                {
                    "seconds": seconds,
                    "job_bytes": job_bytes + (queue_after - queue_before),
                    "job_keys": keys,
                    "used_memory_delta": used_after - used_before,
                }
            )
            log(f"enqueue: {tasks:,} tasks answered in {seconds:.3f} s; {job_bytes / tasks:.0f} bytes/task in Redis")
            stack.delete_keys(f"{prefix}:job:{job_id}")  # keep the shared Redis small between runs
        out.append(
            {
                "tasks": tasks,
                "body_mib": len(body) / 2**20,
                "runs": runs,
                "seconds": percentiles([r["seconds"] for r in runs]),
                "redis_bytes_per_task": sum(r["job_bytes"] for r in runs) / len(runs) / tasks,
                "used_memory_delta_bytes_per_task": sum(r["used_memory_delta"] for r in runs) / len(runs) / tasks,
            }
        )
    return out


def worker_rss(stack: Stack, tasks: int, batches: int, timeout: float) -> dict:
    stack.fake.configure(delay=0.02, jitter=0.01, rpm=0, tpm=0)
    prefix = stack.prefix("rss")
    api = stack.api(prefix)
    label_studio = stack.label_studio()
    api.setup_project(RSS_PROJECT, label_studio)
    [worker] = stack.workers(prefix, 1, concurrency=1, LLM_CONCURRENCY=100)
    pid = worker.process.pid
    time.sleep(1.0)
    before = tree_rss(pid)
    log(f"enqueue: worker RSS {before['total_mib']:.0f} MiB before")
    after, peak = [], before["total_mib"]
    for batch in range(batches):
        started = time.monotonic()
        body = batch_body(RSS_PROJECT, tasks, salt=f"rss{batch} ", start=batch * tasks, held_by=label_studio)
        payload, _ = api.call("POST", "/predict", body)
        job_id = payload["job"]
        state, next_poll = "running", 0.0
        while label_studio.count() < (batch + 1) * tasks and time.monotonic() - started < timeout:
            peak = max(peak, tree_rss(pid)["total_mib"])
            if time.monotonic() >= next_poll:
                state = api.job(job_id)["state"]
                next_poll = time.monotonic() + 1.0
                if state in ("failed", "partial"):
                    break
            if worker.process.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{worker.log[-3000:]}")
            time.sleep(0.25)
        seconds = time.monotonic() - started
        time.sleep(0.5)
        state = api.job(job_id)["state"]
        rss = tree_rss(pid)
        peak = max(peak, rss["total_mib"])
        after.append(rss | {"seconds": seconds, "state": state, "landed": label_studio.count() - batch * tasks})
        log(f"enqueue: worker RSS {rss['total_mib']:.0f} MiB after batch {batch + 1} ({seconds:.0f} s, {state})")
    stack.stop(worker)
    stack.drop_label_studio(label_studio)
    stack.close_api(api)
    return {"tasks": tasks, "before": before, "after": after, "peak_total_mib": peak, "llm_delay_s": 0.02}


def run(stack: Stack, quick: bool) -> dict:
    sizes = {10_000: 5, 100_000: 2} if quick else {10_000: 10, 100_000: 5}
    prefix = stack.prefix("enqueue")
    api = stack.api(prefix)
    api.call(
        "POST",
        "/setup",
        {
            "project": f"{PROJECT}.{PROJECT_TS}",
            "schema": CONFIG_XML,
            "hostname": "http://127.0.0.1:9",  # never contacted: nothing consumes these jobs
            "access_token": LS_TOKEN,
        },
    )
    api.call(
        "POST",
        "/webhook",
        {
            "action": "ANNOTATION_CREATED",
            "project": {"id": PROJECT},
            "annotation": {"result": [{"from_name": "prompt", "value": {"text": [PROMPT]}}]},
        },
    )
    enqueue = enqueue_times(stack, api, prefix, sizes)
    stack.close_api(api)
    stack.delete_keys(prefix)  # the queued messages must never reach a worker
    rss = worker_rss(stack, 10_000, 2 if quick else 3, timeout=240 if quick else 400)
    return {
        "scenario": "enqueue",
        "setup": {
            "api": f"{API_COMMAND}, default settings (cache on, BATCH_CHUNK_SIZE=100)",
            "task_text_chars": 120,
            "worker": "llm-backend worker --concurrency 1, LLM_CONCURRENCY=100; fake LLM 20 ms ± 10 ms",
        },
        "enqueue": enqueue,
        "worker_rss": rss,
    }
