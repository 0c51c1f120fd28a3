"""Scenario 2: interactive latency — one task with an annotator's prompt, answered inside /predict.

Each request carries a prompt of its own (``Is it sarcastic? [bench:<token>]``), so nothing comes
from the cache, and the fake LLM records its own time for that token: the **overhead** of a request is
its end-to-end time at the client minus the fake's time for exactly that request (everything above
the LLM call: HTTP in and out of the API, Flask, Redis, prompt and regions, the ``openai`` client).
Clients are threads of the benchmark process, each with one keep-alive connection, all starting
together; a few warm-up requests per client are not counted. Cache hits replay the measured
single-client requests (same prompt and text): no LLM call, so their latency is all overhead.
The harness floor is the same measurement with the clients talking straight to the fake LLM: what
the measuring itself adds (client threads sharing one GIL, loopback HTTP); it is part of the overhead.
"""

from __future__ import annotations

import json
import threading
import time

from bench.harness import API_COMMAND, Http, Stack, interactive_body, log, percentiles, task_text

LLM_DELAY, LLM_JITTER = 0.05, 0.02
PROJECT = 200


def _predicted(status: int, payload) -> bool:
    return status == 200 and bool(payload.get("results")) and bool(payload["results"][0].get("result"))


def _answered(status: int, payload) -> bool:
    return status == 200 and bool(payload.get("choices"))


def run_clients(
    url: str,
    bodies: list[list[tuple[str, bytes]]],
    warmup: int,
    deadline: float,
    path: str = "/predict",
    check=_predicted,
) -> list[tuple[str, float, bool]]:
    """Each client sends its bodies one after the other; returns (token, seconds, ok) of the counted ones."""
    barrier = threading.Barrier(len(bodies))
    results: list[list[tuple[str, float, bool]]] = [[] for _ in bodies]
    errors: list[str] = []

    def client(index: int) -> None:
        http = Http(url, timeout=60)
        try:
            for k, (token, body) in enumerate(bodies[index]):
                if k == warmup:
                    barrier.wait(timeout=120)
                if time.monotonic() > deadline:
                    break
                status, payload, elapsed = http.request("POST", path, body)
                ok = check(status, payload)
                if not ok and len(errors) < 5:
                    errors.append(f"{status}: {str(payload)[:200]}")
                if k >= warmup:
                    results[index].append((token, elapsed, ok))
        except threading.BrokenBarrierError:
            errors.append("barrier broken")
        finally:
            http.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic() + 60))
    if errors:
        log(f"interactive: some requests failed: {errors}")
    return [item for per_client in results for item in per_client]


def make_bodies(clients: int, per_client: int, tag: str) -> list[list[tuple[str, bytes]]]:
    bodies = []
    for c in range(clients):
        mine = []
        for k in range(per_client):
            i = c * per_client + k
            token = f"{tag}-{c}-{k}"
            text = task_text(i, f"{tag} ")
            mine.append((token, interactive_body(PROJECT, i, text, f"Is it sarcastic? [bench:{token}]")))
        bodies.append(mine)
    return bodies


def harness_floor(fake_url: str, clients: int, per_client: int, fake) -> dict:
    """The same clients straight against the fake LLM: client time minus the fake's own time is what
    the measuring itself (Python client threads, loopback HTTP) adds; the API's overhead includes it."""
    bodies = []
    for c in range(clients):
        mine = []
        for k in range(per_client):
            token = f"floor{clients}-{c}-{k}"
            message = {"role": "user", "content": f"{task_text(k)} [bench:{token}]"}
            mine.append((token, json.dumps({"model": "m", "messages": [message]}).encode()))
        bodies.append(mine)
    fake.timings()
    measured = run_clients(
        fake_url, bodies, 1, deadline=time.monotonic() + 60, path="/v1/chat/completions", check=_answered
    )
    llm_times = fake.timings()
    floor = [seconds - llm_times[token] for token, seconds, ok in measured if ok and token in llm_times]
    return {k: v * 1000 if k != "n" else v for k, v in percentiles(floor).items()}


def run(stack: Stack, quick: bool) -> dict:
    levels = {1: 150, 8: 60, 32: 20} if quick else {1: 500, 8: 150, 32: 60}
    warmup = 3
    fake = stack.fake
    fake.configure(delay=LLM_DELAY, jitter=LLM_JITTER, rpm=0, tpm=0)
    prefix = stack.prefix("interactive")
    api = stack.api(prefix)
    label_studio = stack.label_studio()
    api.setup_project(PROJECT, label_studio)
    out_levels = []
    replay: list[list[tuple[str, bytes]]] = []
    for clients, per_client in levels.items():
        log(f"interactive: {clients} client(s) × {per_client} requests (+{warmup} warm-up each)")
        bodies = make_bodies(clients, warmup + per_client, f"c{clients}")
        fake.clear()
        started = time.monotonic()
        measured = run_clients(api.url, bodies, warmup, deadline=started + (60 if quick else 180))
        wall = time.monotonic() - started
        llm_times = fake.timings()
        latencies = [seconds for _, seconds, ok in measured if ok]
        overheads = [seconds - llm_times[token] for token, seconds, ok in measured if ok and token in llm_times]
        if clients == 1:
            replay = [[(token, body) for token, body in bodies[0][warmup:]]]
        out_levels.append(
            {
                "clients": clients,
                "requests": len(measured),
                "failed": sum(1 for _, _, ok in measured if not ok),
                "requests_per_s": len(measured) / wall if wall else 0.0,
                "latency_ms": {k: v * 1000 if k != "n" else v for k, v in percentiles(latencies).items()},
                "overhead_ms": {k: v * 1000 if k != "n" else v for k, v in percentiles(overheads).items()},
                "llm_ms": {
                    k: v * 1000 if k != "n" else v
                    for k, v in percentiles([llm_times[t] for t, _, ok in measured if ok and t in llm_times]).items()
                },
                "overhead_samples_ms": [o * 1000 for o in overheads],
            }
        )
        out_levels[-1]["harness_floor_ms"] = harness_floor(fake.url, clients, max(4, per_client // 3) + 1, fake)
        o, f = out_levels[-1]["overhead_ms"], out_levels[-1]["harness_floor_ms"]
        log(
            f"interactive:   overhead p50 {o['p50']:.1f} ms, p95 {o['p95']:.1f} ms, p99 {o['p99']:.1f} ms "
            f"(harness floor p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms)"
        )

    cache = []
    for clients in (1, 8):
        log(f"interactive: cache hits, {clients} client(s)")
        pool = replay[0]
        per_client = max(1, len(pool) // clients)
        bodies = [
            [("warm", pool[(c * per_client + k) % len(pool)][1]) for k in range(per_client)] for c in range(clients)
        ]
        fake.clear()
        started = time.monotonic()
        measured = run_clients(api.url, bodies, 0, deadline=started + 60)
        calls = fake.stats()["requests"]
        latencies = [seconds for _, seconds, ok in measured if ok]
        cache.append(
            {
                "clients": clients,
                "requests": len(measured),
                "llm_calls": calls,
                "latency_ms": {k: v * 1000 if k != "n" else v for k, v in percentiles(latencies).items()},
                "latency_samples_ms": [s * 1000 for s in latencies],
            }
        )
        c = cache[-1]["latency_ms"]
        log(f"interactive:   cache hit p50 {c['p50']:.1f} ms, p99 {c['p99']:.1f} ms ({calls} LLM calls)")
    stack.drop_label_studio(label_studio)
    stack.close_api(api)
    return {
        "scenario": "interactive",
        "setup": {
            "llm_delay_s": LLM_DELAY,
            "llm_jitter_s": LLM_JITTER,
            "api": f"{API_COMMAND}, default settings (cache on)",
            "clients": "threads of the benchmark process, one keep-alive connection each",
            "warmup_per_client": warmup,
            "overhead": "client-measured time minus the fake LLM's own time for that request",
            "harness_floor": "the same clients sending straight to the fake LLM: client time minus the fake's time",
        },
        "levels": out_levels,
        "cache_hits": cache,
    }
