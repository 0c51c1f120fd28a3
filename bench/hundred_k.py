"""Scenario ``hundred_k``: 100,000 tasks against a real Label Studio 1.23.2, as a user runs it (issue #24).

Not in the default set (it takes many minutes): ``python -m bench.run --only hundred_k``, or one variant at a
time, ``python -m bench.hundred_k --flag on|off|both [--tasks N]``.

Per variant a Label Studio of its own (tests/e2e's helpers: SQLite, its defaults) started with
``fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short`` set to ``true`` in its environment,
or without it; a project of N tasks imported through its API; the backend connected through ``/setup``; one
``llm-backend worker`` with its defaults; the fake LLM at 500 ms ± 100 ms, ``CACHE_TTL=0``; then
``llm-backend batch --project ID --wait --yes``.  Measured from the command's start: the first LLM call, the
first and the last prediction landed (the job's ``pushed`` count, sampled twice a second), predictions in
Label Studio against tasks, LLM calls against tasks, and each import call's duration over time (the worker's
``pushed N predictions … in S s`` log lines).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.batch import LLM_DELAY, LLM_JITTER
from bench.harness import CONFIG_XML, ROOT, Api, Stack, log, task_text
from bench.real_ls import CHILDREN, RealLabelStudio
from tests.integration.processes import BackendProcess

FLAG = "fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short"
TASKS = 100_000
IMPORT_BATCH = 10_000  # tasks per import call when the project is made
SAMPLE_EVERY = 0.5
PUSH_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*pushed (\d+) predictions to project \d+ in ([\d.]+) s", re.M
)
PUSH_FAILED = re.compile(r"push of \d+ predictions to project \d+ failed|read back|MaxConnectionsError|Traceback")


def make_project(ls: RealLabelStudio, title: str, count: int) -> int:
    response = ls.http.post("/api/projects", json={"title": title, "label_config": CONFIG_XML})
    response.raise_for_status()
    project = int(response.json()["id"])
    for start in range(0, count, IMPORT_BATCH):
        tasks = [{"data": {"text": task_text(i)}} for i in range(start, min(count, start + IMPORT_BATCH))]
        ls.http.post(f"/api/projects/{project}/import", json=tasks).raise_for_status()
    held = ls.http.get(f"/api/projects/{project}").json().get("task_number")
    if held != count:
        raise RuntimeError(f"Label Studio holds {held} of the {count} tasks imported")
    return project


class Follower:
    """The job's counts and the fake LLM's calls, sampled in a thread from the command's start."""

    def __init__(self, stack: Stack, api: Api, command: BackendProcess, started: float) -> None:
        self.stack, self.api, self.command, self.started = stack, api, command, started
        self.job_id: str | None = None
        self.samples: list[tuple[float, int, int, int]] = []  # (s, total, done, pushed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            if self.job_id is None:
                found = re.search(r"job ([0-9a-f]{32}): started", self.command.log)
                self.job_id = found.group(1) if found else None
                continue
            try:
                status = self.api.job(self.job_id)
            except RuntimeError:
                continue
            at = time.time() - self.started
            self.samples.append((at, status["total"], status["done"], status["pushed"]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def first(self, index: int, at_least: int) -> float | None:
        return next((sample[0] for sample in self.samples if sample[index] >= at_least), None)


def push_calls(worker_log: str, started: float) -> list[tuple[float, int, float]]:
    """Each import call the worker logged: (seconds since the command started when it ended, size, duration)."""
    calls = []
    for stamp, size, seconds in PUSH_LINE.findall(worker_log):
        ended = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        calls.append((ended - started, int(size), float(seconds)))
    return calls


def variant(stack: Stack, with_flag: bool, tasks: int, limit_s: float) -> dict[str, Any]:
    name = "flag-on" if with_flag else "flag-off"
    if with_flag:
        os.environ[FLAG] = "true"  # the Label Studio started now inherits it (tests/e2e/label_studio_server.py)
    else:
        os.environ.pop(FLAG, None)
    prefix = stack.prefix(f"hundred-k-{name}")
    (stack.workdir / name).mkdir(parents=True, exist_ok=True)
    ls = RealLabelStudio(stack.workdir / name)
    api = stack.api(prefix, CACHE_TTL=0)
    try:
        made = time.monotonic()
        project = make_project(ls, f"{tasks} tasks, {name}", tasks)
        log(f"hundred_k {name}: project {project} with {tasks} tasks in {time.monotonic() - made:.0f} s")
        api.setup_project(project, ls)  # type: ignore[arg-type]  (it needs .url and .token, as the stand-in has)
        [worker] = stack.workers(prefix, 1, concurrency=CHILDREN, CACHE_TTL=0)
        stack.fake.clear()
        command = BackendProcess(
            ["batch", "--project", str(project), "--wait", "--yes"],
            stack.env(prefix, CACHE_TTL=0, LOG_LEVEL="INFO"),
            stack.workdir / f"batch-{name}-{stack.run_id}.log",
        )
        started = time.time()
        stack._started(command.start())
        follower = Follower(stack, api, command, started)
        try:
            exit_code: int | None = command.process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:  # what was reached by then is the finding
            log(f"hundred_k {name}: not finished after {limit_s:.0f} s; stopping it")
            command.stop()
            exit_code = None
        finished = time.time() - started
        follower.stop()
        llm = stack.fake.stats()
        stack.stop(worker)
        landed = ls.prediction_count(project)
        status = api.job(follower.job_id) if follower.job_id else {}
        calls = push_calls(worker.log, started)
        estimate = next((line.strip() for line in command.log.splitlines() if "tasks to predict:" in line), "")
        return {
            "variant": name,
            "label_studio_flag": with_flag,
            "tasks": tasks,
            "exit_code": exit_code,
            "limit_s": limit_s,
            "finished": exit_code is not None,
            "estimate_line": estimate,
            "first_llm_call_s": llm["first_request_at"] - started if llm.get("first_request_at") else None,
            "first_prediction_s": follower.first(3, 1),
            "last_prediction_s": follower.first(3, tasks),
            "command_s": finished,
            "all_tasks_in_job_s": follower.first(1, tasks),
            "predictions_in_label_studio": landed,
            "llm_calls": llm.get("ok"),
            "llm_requests": llm.get("requests"),
            "job": {key: status.get(key) for key in ("state", "total", "done", "failed", "pushed")},
            "import_calls": len(calls),
            "import_seconds_first_last": [calls[0][2], calls[-1][2]] if calls else None,
            "import_seconds_max": max((seconds for _, _, seconds in calls), default=None),
            "worker_problems": PUSH_FAILED.findall(worker.log)[:20],
            "push_call_samples": calls,
            "pushed_samples": [(at, pushed) for at, _, _, pushed in follower.samples],
            "total_samples": [(at, total) for at, total, _, _ in follower.samples],
        }
    finally:
        stack.close_api(api)
        ls.close()


def run(
    stack: Stack, quick: bool, tasks: int = TASKS, flags: tuple[bool, ...] = (True, False), limit_s: float = 3600
) -> dict:
    stack.fake.configure(delay=LLM_DELAY, jitter=LLM_JITTER, rpm=0, tpm=0)
    runs = []
    for with_flag in flags:
        log(f"hundred_k: {tasks} tasks, Label Studio {'with' if with_flag else 'without'} {FLAG}")
        result = variant(stack, with_flag, tasks, limit_s)
        log(
            f"hundred_k:   first LLM call {result['first_llm_call_s']} s, first prediction "
            f"{result['first_prediction_s']} s, last {result['last_prediction_s']} s; "
            f"{result['predictions_in_label_studio']} predictions in Label Studio, {result['llm_calls']} LLM calls; "
            f"job {result['job']}"
        )
        runs.append(result)
    return {
        "scenario": "hundred_k",
        "setup": {
            "label_studio": "real Label Studio 1.23.2 (SQLite), same machine, a fresh one per variant",
            "llm_delay_s": LLM_DELAY,
            "llm_jitter_s": LLM_JITTER,
            "workers": f"one llm-backend worker --concurrency {CHILDREN} (its default here), its defaults, CACHE_TTL=0",
            "command": "llm-backend batch --project ID --wait --yes",
        },
        "runs": runs,
    }


def main() -> int:
    from bench.plot import plot_hundred_k
    from bench.report import hundred_k_table
    from bench.run import _redis_url

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--flag", choices=("on", "off", "both"), default="both")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    parser.add_argument(
        "--limit", type=float, default=3600, help="seconds a variant's command may run; then stopped, figures kept"
    )
    args = parser.parse_args()
    results = Path(args.results)
    flags = {"on": (True,), "off": (False,), "both": (True, False)}[args.flag]
    redis_url, embedded = _redis_url()
    stack = Stack(results / "logs", redis_url)
    try:
        stack.start_fake_llm()
        result = run(stack, quick=False, tasks=args.tasks, flags=flags, limit_s=args.limit)
    finally:
        stack.close()
        if embedded is not None:
            embedded.terminate()
    out = results / f"hundred_k-{args.flag}-{args.tasks}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(hundred_k_table(result))
    print(f"{out}; plot: {plot_hundred_k(result, out.with_suffix('.png'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
