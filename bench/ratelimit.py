"""Scenario 4: a provider limited to R requests per minute.

The fake LLM (200 ms ± 50 ms per call) admits R requests per minute as a token bucket holding one
second's worth and answers 429 with ``Retry-After`` beyond it. Two worker processes
(``--concurrency 1`` each, default ``LLM_CONCURRENCY``=32) run one batch; the workers and the API get
``LLM_RPM=R``, which the shared rate limiter reads (a setting that a backend without it ignores).

* achieved RPM: successful LLM calls / (last successful call − submit) × 60, and that over R;
* RPM over job wall: predictions landed / (last prediction − submit) × 60;
* 429s: what the fake refused; failed tasks: what the job reports.
"""

from __future__ import annotations

import time

from bench.harness import Stack, batch_body, log

LLM_DELAY, LLM_JITTER = 0.2, 0.05


def _limiter_present() -> bool:
    from shared.domain.config import Settings

    return "llm_rpm" in Settings.model_fields


def limited_run(
    stack: Stack, *, label: str, rpm: int, tasks: int, project: int, workers: int, env: dict, timeout: float
) -> dict:
    prefix = stack.prefix(f"rate{project}")
    stack.fake.configure(delay=LLM_DELAY, jitter=LLM_JITTER, rpm=rpm, tpm=0, burst=1.0)
    api = stack.api(prefix, CACHE_TTL=0, **env)
    label_studio = stack.label_studio()
    api.setup_project(project, label_studio)
    procs = stack.workers(prefix, workers, concurrency=1, CACHE_TTL=0, **env)
    body = batch_body(project, tasks, salt=f"rate{project} ", held_by=label_studio)
    time.sleep(1.5)  # let the fake's bucket fill up again after the set-up
    stack.fake.clear()
    submitted_wall, started = time.time(), time.monotonic()
    payload, _ = api.call("POST", "/predict", body)
    job_id = payload["job"]
    status: dict = {"state": "queued"}
    next_poll = 0.0
    while label_studio.count() < tasks and time.monotonic() - started < timeout:
        if time.monotonic() >= next_poll:
            status = api.job(job_id)
            next_poll = time.monotonic() + 1.0
            if status["state"] in ("failed", "partial"):
                break
        time.sleep(0.05)
    timed_out = label_studio.count() < tasks and status["state"] not in ("failed", "partial")
    status = api.job(job_id)
    stats = stack.fake.stats()
    arrivals = sorted(label_studio.arrivals)
    for proc in procs:
        stack.stop(proc)
    stack.drop_label_studio(label_studio)
    stack.close_api(api)
    ok_times = stats["ok_times"]
    active = (ok_times[-1] - submitted_wall) if ok_times else float("nan")
    achieved = len(ok_times) / active * 60 if ok_times else 0.0
    wall = (arrivals[-1] - started) if arrivals else float("nan")
    per_second: dict[int, int] = {}
    for t in ok_times:
        per_second[int(t - submitted_wall)] = per_second.get(int(t - submitted_wall), 0) + 1
    return {
        "label": label,
        "limit_rpm": rpm,
        "tasks": tasks,
        "worker_processes": workers,
        "env": env,
        "landed": len(arrivals),
        "job_state": status["state"] + (" (timed out)" if timed_out else ""),
        "job_failed": status["failed"],
        "errors": status["errors"][:5],
        "llm_requests": stats["requests"],
        "llm_ok": stats["ok"],
        "llm_429": stats["rate_limited"],
        "llm_max_in_flight": stats["max_in_flight"],
        "achieved_rpm": achieved,
        "achieved_ratio": achieved / rpm,
        "wall_rpm": len(arrivals) / wall * 60 if arrivals else 0.0,
        "seconds": wall,
        "ok_per_second": [per_second.get(s, 0) for s in range(int(active) + 1)] if ok_times else [],
        "429_per_second": [
            sum(1 for t in stats["limited_times"] if int(t - submitted_wall) == s) for s in range(int(active) + 1)
        ]
        if ok_times
        else [],
        "target_applies": "LLM_RPM" in env,
    }


def run(stack: Stack, quick: bool) -> dict:
    limiter = _limiter_present()
    rpm = 1200
    plans = [
        {"label": "LLM_RPM=R", "rpm": rpm, "tasks": 400, "env": {"LLM_RPM": rpm}},
        {"label": "LLM_RPM unset (no limiter)", "rpm": rpm, "tasks": 200, "env": {}},
    ]
    if not quick:
        plans = [
            {"label": "LLM_RPM=R", "rpm": 600, "tasks": 1200, "env": {"LLM_RPM": 600}},
            {"label": "LLM_RPM=R", "rpm": 1200, "tasks": 1000, "env": {"LLM_RPM": 1200}},
            {"label": "LLM_RPM unset (no limiter)", "rpm": 1200, "tasks": 400, "env": {}},
        ]
    runs = []
    for project, plan in enumerate(plans, start=400):
        ideal = plan["tasks"] / plan["rpm"] * 60
        log(f"ratelimit: {plan['tasks']} tasks at R={plan['rpm']} RPM ({plan['label']}, ideal {ideal:.0f} s)")
        result = limited_run(
            stack,
            label=plan["label"],
            rpm=plan["rpm"],
            tasks=plan["tasks"],
            project=project,
            workers=2,
            env=plan["env"],
            timeout=max(90.0, 4 * ideal),
        )
        runs.append(result)
        log(
            f"ratelimit:   achieved {result['achieved_rpm']:.0f} RPM ({result['achieved_ratio'] * 100:.1f} % of R), "
            f"{result['llm_429']} 429s, {result['job_failed']} failed, job {result['job_state']}"
        )
    limiter_note = (
        "The shared rate limiter is present in this tree (Settings has llm_rpm)."
        if limiter
        else "No shared rate limiter in this tree yet (Settings has no llm_rpm): LLM_RPM is ignored, and what holds "
        "the rate is the fake's 429s with the openai client's retries honouring Retry-After."
    )
    return {
        "scenario": "ratelimit",
        "setup": {
            "llm_delay_s": LLM_DELAY,
            "llm_jitter_s": LLM_JITTER,
            "fake_bucket": "R per minute, refilled continuously, holding 1 s worth; 429 with Retry-After (whole s)",
            "workers": "2 × llm-backend worker --concurrency 1, default LLM_CONCURRENCY (32), CACHE_TTL=0",
            "limiter_present": limiter,
        },
        "runs": runs,
        "notes": limiter_note,
    }
