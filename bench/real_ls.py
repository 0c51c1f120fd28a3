"""Scenario ``real_ls``: batch throughput against a real Label Studio 1.23.2 on the same machine.

Label Studio is the one of the e2e tests (``tests/e2e/label_studio_server.py``: its own venv under
``~/.cache/llm-backend``, a migrated data dir copied per run, SQLite), started once for the scenario.
Each run gets a project of its own with N tasks imported through Label Studio's API; the backend is
connected through ``/setup`` as Label Studio does it, and ``/predict`` gets every task at once, as Data
Manager → Retrieve Predictions sends them.  Workers run with their defaults (``llm-backend worker``:
prefork children = cores, ``LLM_CONCURRENCY=100`` each, ``BATCH_CHUNK_SIZE=100``); the LLM is
the fake OpenAI server at 500 ms ± 100 ms, ``CACHE_TTL=0``.

The CPU time of every process of the run is measured over the job, for the rate the machine's cores allow
at that CPU per task.  Time runs from sending ``/predict`` to the job's ``pushed`` count reaching N (a
prediction is counted once Label Studio answered its import call); the count in Label Studio is checked at
the end.  The fake's in-flight counter is sampled 4 times a second (the plot shows the window staying full).

Label Studio's own ingest rate is measured alone in the same run: N predictions pushed straight into a
fresh project of N tasks, one plain-JSON ``import/predictions`` call per ``INGEST_BATCH``, nothing else
running.  The sequential baseline is the reference's path (one call at a time inside ``/predict``), as in
``bench/batch.py``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.batch import LLM_DELAY, LLM_JITTER, sequential_baseline
from bench.harness import CONFIG_XML, PROJECT_TS, Api, Stack, free_port, log, task_text, tree_cpu
from tests.e2e.label_studio_server import TOKEN, LabelStudioServer, ensure_installed, fresh_data_dir

INGEST_BATCH = 1000  # predictions per call when Label Studio's ingest rate is measured alone
SAMPLE_EVERY = 0.25
LLM_CONCURRENCY = 100  # the default
CORES = os.cpu_count() or 1
CHILDREN = 2  # prefork children of one `llm-backend worker` on 2 cores (Celery's default: the core count)


class RealLabelStudio:
    """A real Label Studio for the scenario, and the few API calls the benchmark makes itself."""

    def __init__(self, workdir: Path) -> None:
        python = ensure_installed()
        port = free_port()
        log_path = workdir / "label-studio.log"
        data = fresh_data_dir(python, workdir / f"label-studio-data-{port}", port, log_path)
        self.server = LabelStudioServer(python, data, port, log_path).start()
        self.url, self.token = self.server.url, TOKEN
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Token {TOKEN}"}, timeout=900)

    def close(self) -> None:
        self.http.close()
        self.server.stop()

    def project(self, title: str, count: int) -> tuple[int, list[dict]]:
        """A project with ``count`` tasks; returns its id and the tasks as Retrieve Predictions sends them."""
        response = self.http.post("/api/projects", json={"title": title, "label_config": CONFIG_XML})
        response.raise_for_status()
        project = response.json()["id"]
        tasks = [{"data": {"text": task_text(i)}} for i in range(count)]
        self.http.post(f"/api/projects/{project}/import", json=tasks).raise_for_status()
        listed = self.http.get("/api/tasks", params={"project": project, "page_size": count + 1, "fields": "all"})
        listed.raise_for_status()
        found = [{"id": task["id"], "data": task["data"]} for task in listed.json()["tasks"]]
        if len(found) != count:
            raise RuntimeError(f"Label Studio holds {len(found)} of the {count} tasks imported")
        return project, found

    def prediction_count(self, project: int) -> int:
        response = self.http.get(f"/api/projects/{project}")
        response.raise_for_status()
        return int(response.json().get("total_predictions_number") or 0)

    def import_predictions(self, project: int, predictions: list[dict]) -> float:
        started = time.monotonic()
        self.http.post(f"/api/projects/{project}/import/predictions", json=predictions).raise_for_status()
        return time.monotonic() - started


def ingest_alone(ls: RealLabelStudio, count: int) -> dict:
    """Label Studio's own rate: ``count`` predictions into a fresh project of ``count`` tasks, nothing else running."""
    project, tasks = ls.project(f"ingest {count}", count)
    result = [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Sarcastic"]}}]
    calls = []
    started = time.monotonic()
    for start in range(0, count, INGEST_BATCH):
        batch = [
            {"task": task["id"], "result": result, "score": 0.9, "model_version": "ingest"}
            for task in tasks[start : start + INGEST_BATCH]
        ]
        calls.append(ls.import_predictions(project, batch))
    elapsed = time.monotonic() - started
    return {
        "predictions": count,
        "batch": INGEST_BATCH,
        "calls": len(calls),
        "seconds": elapsed,
        "per_s": count / elapsed,
        "first_call_s": calls[0],
        "last_call_s": calls[-1],
        "landed": ls.prediction_count(project),
    }


class Sampler:
    """The fake's in-flight and answered counts and the job's pushed count, sampled in a thread while a run lasts."""

    def __init__(self, stack: Stack, api: Api, job_id: str, started: float) -> None:
        self.stack, self.api, self.job_id, self.started = stack, api, job_id, started
        self.in_flight: list[tuple[float, int]] = []
        self.answered: list[tuple[float, int]] = []
        self.pushed: list[tuple[float, int]] = []
        self.status: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            now = time.monotonic() - self.started
            fake = self.stack.fake.in_flight()
            self.in_flight.append((now, fake["in_flight"]))
            self.answered.append((now, fake["ok"]))
            self.status = self.api.job(self.job_id)
            self.pushed.append((now, self.status["pushed"]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def batch_run(stack: Stack, api: Api, ls: RealLabelStudio, prefix: str, tasks: int, processes: int) -> dict:
    project, listed = ls.project(f"batch {tasks} x{processes}", tasks)
    api.setup_project(project, ls)  # type: ignore[arg-type]  (it needs .url and .token, as the stand-in has)
    workers = stack.workers(prefix, processes, concurrency=CHILDREN, CACHE_TTL=0)
    stack.fake.clear()
    body = json.dumps({"tasks": listed, "project": f"{project}.{PROJECT_TS}", "label_config": CONFIG_XML}).encode()
    pids = {
        "workers": [worker.process.pid for worker in workers],
        "label_studio": [ls.server.process.pid],
        "fake_llm": [stack.fake_process.pid],
        "api": [api.process.process.pid],
    }
    cpu_before = {name: sum(tree_cpu(pid) for pid in group) for name, group in pids.items()}
    started = time.monotonic()
    payload, answered_in = api.call("POST", "/predict", body)
    job_id = payload.get("job")
    if not job_id:
        raise RuntimeError(f"/predict did not start a job: {json.dumps(payload)[:300]}")
    sampler = Sampler(stack, api, job_id, started)
    deadline = started + max(120.0, tasks / 10)
    while time.monotonic() < deadline:
        status = sampler.status
        if status.get("pushed", 0) >= tasks or status.get("state") in ("failed", "partial"):
            break
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(f"a worker exited:\n{worker.log[-3000:]}")
        time.sleep(0.05)
    cpu = {name: sum(tree_cpu(pid) for pid in group) - cpu_before[name] for name, group in pids.items()}
    sampler.stop()
    elapsed = next((at for at, pushed in sampler.pushed if pushed >= tasks), float("nan"))
    for worker in workers:
        stack.stop(worker)
    landed = ls.prediction_count(project)
    window = LLM_CONCURRENCY * CHILDREN * processes
    busy = [count for at, count in sampler.in_flight if 1.0 < at < elapsed - 2.0]
    return {
        "tasks": tasks,
        "worker_processes": processes,
        "window": window,
        "predict_answered_s": answered_in,
        "last_prediction_s": elapsed,
        "tasks_per_s": tasks / elapsed,
        "landed_in_label_studio": landed,
        "job": {key: sampler.status.get(key) for key in ("state", "done", "pushed", "failed")},
        "mean_in_flight": sum(busy) / len(busy) if busy else float("nan"),
        "cpu_ms_per_task": {name: seconds * 1000 / tasks for name, seconds in cpu.items()},
        # Every process of the run shares the machine's cores: at this CPU per task, no schedule goes faster.
        "cpu_limit_per_s": CORES * tasks / sum(cpu.values()),
        "in_flight_samples": sampler.in_flight,
        "pushed_samples": sampler.pushed,
    }


def run(stack: Stack, quick: bool, sizes: tuple[int, ...] = (2000, 10000)) -> dict:
    processes = [1] if quick else [1, 2]
    stack.fake.configure(delay=LLM_DELAY, jitter=LLM_JITTER, rpm=0, tpm=0)
    prefix = stack.prefix("real-ls")
    api = stack.api(prefix, CACHE_TTL=0)
    baseline = sequential_baseline(stack, api, 20, project=900, tasks_total=1)
    log(f"real_ls: sequential baseline {baseline['seconds_per_task'] * 1000:.0f} ms/task")
    ls = RealLabelStudio(stack.workdir)
    runs: list[dict[str, Any]] = []
    ingest: dict[int, dict] = {}
    try:
        for size in sizes:
            log(f"real_ls: Label Studio's ingest alone, {size} predictions in calls of {INGEST_BATCH}")
            ingest[size] = ingest_alone(ls, size)
            log(f"real_ls:   {ingest[size]['per_s']:.0f} predictions/s")
            for count in processes:
                log(f"real_ls: {size} tasks, {count} worker process(es)")
                result = batch_run(stack, api, ls, prefix, size, count)
                result["speedup"] = baseline["seconds_per_task"] * size / result["last_prediction_s"]
                limit = min(result["window"] / LLM_DELAY, ingest[size]["per_s"])
                result["physical_limit_per_s"] = limit
                result["share_of_limit"] = result["tasks_per_s"] / limit
                result["share_of_cpu_limit"] = result["tasks_per_s"] / min(limit, result["cpu_limit_per_s"])
                runs.append(result)
                log(
                    f"real_ls:   {result['tasks_per_s']:.0f} tasks/s, last at {result['last_prediction_s']:.1f} s, "
                    f"{result['speedup']:.1f}× the sequential path, {100 * result['share_of_limit']:.0f}% of "
                    f"min(window/latency, ingest) = {limit:.0f}/s; {result['landed_in_label_studio']} in Label Studio"
                )
                per_task = ", ".join(f"{name} {ms:.1f}" for name, ms in result["cpu_ms_per_task"].items())
                log(
                    f"real_ls:   CPU ms per task: {per_task}: {CORES} cores allow {result['cpu_limit_per_s']:.0f}/s; "
                    f"{100 * result['share_of_cpu_limit']:.0f}% of min(window/latency, ingest, CPU)"
                )
    finally:
        ls.close()
        stack.close_api(api)
    return {
        "scenario": "real_ls",
        "setup": {
            "label_studio": "real Label Studio 1.23.2 (SQLite), same machine",
            "llm_delay_s": LLM_DELAY,
            "llm_jitter_s": LLM_JITTER,
            "workers": f"llm-backend worker --concurrency {CHILDREN} (Celery's default here), LLM_CONCURRENCY=100, "
            "BATCH_CHUNK_SIZE=100, CACHE_TTL=0",
        },
        "baseline": baseline,
        "ingest": {str(size): figures for size, figures in ingest.items()},
        "runs": runs,
    }
