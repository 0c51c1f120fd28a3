"""Twelve ``POST /evaluations`` at once on a 20,000-task project: what they answer and one API process's memory.

One ``llm-backend api`` process (gunicorn, ``--workers 1``) scores version ``v1`` of a project the Label Studio
stand-in serves: every task with a 1 KB text, an annotation and a ``v1`` prediction. Twelve requests are sent
at the same moment; the API's RSS is sampled every 50 ms. Prints the answers' statuses and the RSS before, at
its peak and after.

    .venv/bin/python -m bench.evaluation_memory [--tasks 20000] [--requests 12]
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import threading
import time
from pathlib import Path

from bench.harness import PROJECT_TS, Http, Stack, log, tree_rss

PROJECT = 88


def choice(label: str) -> list[dict]:
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=12)
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-eval-")), os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        stack.start_fake_llm()
        label_studio = stack.label_studio()
        tasks = [
            {
                "id": i,
                "data": {"text": f"review {i} " + "words " * 170},
                "annotations": [{"id": i, "result": choice("Sarcastic"), "created_at": "2025-01-01T10:00:00Z"}],
            }
            for i in range(1, args.tasks + 1)
        ]
        label_studio.add_project(PROJECT, (Path(__file__).parents[1] / "tests/configs/sarcasm.xml").read_text(), tasks)
        for i in range(1, args.tasks + 1):
            label_studio.add_prediction(PROJECT, i, "v1", choice("Sarcastic" if i % 3 else "Not Sarcastic"))
        api = stack.api(stack.prefix("evalmem"), workers=1)
        api.call(
            "POST",
            "/setup",
            {
                "project": f"{PROJECT}.{PROJECT_TS}",
                "schema": label_studio.projects[PROJECT]["label_config"],
                "hostname": label_studio.url,
                "access_token": label_studio.token,
            },
        )
        [worker] = [child.pid for child in __import__("psutil").Process(api.process.process.pid).children()]
        before = tree_rss(worker)["main_mib"]
        peak, sampling = before, True

        def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, tree_rss(worker)["main_mib"])
                time.sleep(0.05)

        statuses: list[int] = []
        gate = threading.Barrier(args.requests)

        def evaluate() -> None:
            http = Http(api.url, timeout=600)
            gate.wait()
            status, _, _ = http.request("POST", "/evaluations", {"project": PROJECT, "version": "v1"})
            statuses.append(status)
            http.close()

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        clients = [threading.Thread(target=evaluate) for _ in range(args.requests)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        sampling = False
        sampler.join()
        after = tree_rss(worker)["main_mib"]
        answers = ", ".join(f"{count} × {status}" for status, count in sorted(collections.Counter(statuses).items()))
        log(f"{args.requests} evaluations of {args.tasks} tasks at once: {answers} in {elapsed:.1f} s")
        log(f"API process RSS: {before:.0f} MiB before, {peak:.0f} MiB at the peak, {after:.0f} MiB after")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
