"""Processes, HTTP and Redis for the benchmarks: everything started here is stopped here.

Real processes throughout: the fake LLM (the tests' fake OpenAI server in a process of its own,
``python -m tests.fakes.openai_server``), ``llm-backend api`` (gunicorn) and ``llm-backend worker`` (Celery
prefork), each in its own session so that stopping one stops its children too. Label Studio is the recording
stand-in of the tests (``tests/fakes/label_studio.py``), served from a thread of the benchmark process; it records
when each prediction arrived.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import redis

from shared.domain.config import setting_default
from tests.fakes.label_studio import FakeLabelStudio
from tests.fakes.openai_server.control import FakeOpenAIControl
from tests.integration.processes import BackendProcess, backend_env, free_port

API_WORKERS = setting_default("api_workers")
API_THREADS = setting_default("api_threads")
API_COMMAND = f"llm-backend api --workers {API_WORKERS} --threads {API_THREADS}"  # as the benchmarks run it

ROOT = Path(__file__).resolve().parent.parent
CONFIG_XML = (ROOT / "tests" / "configs" / "sarcasm.xml").read_text()
LS_TOKEN = "bench-label-studio-token"
PROMPT = "Is it sarcastic?"
PROJECT_TS = "1700000000"
FINISHED = ("done", "failed", "partial")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- HTTP ---------------------------------------------------------------------------------------
class Http:
    """A keep-alive HTTP/1.1 client for one thread (http.client: the least client-side overhead)."""

    def __init__(self, base_url: str, timeout: float = 120) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | dict | None = None) -> tuple[int, Any, float]:
        """(status, decoded JSON, seconds from sending the request to reading the whole answer)."""
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: reconnect once
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                started = time.perf_counter()
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                elapsed = time.perf_counter() - started
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return response.status, payload, elapsed

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


# --- Label Studio stand-in ----------------------------------------------------------------------
class TimedLabelStudio(FakeLabelStudio):
    """The tests' recording Label Studio, also noting when each prediction arrived (monotonic)."""

    def __init__(self, token: str = LS_TOKEN) -> None:
        self.arrivals: list[float] = []
        super().__init__(token)

    def _store(self, project: int | None, item: dict) -> dict:
        self.arrivals.append(time.monotonic())
        return super()._store(project, item)

    def count(self) -> int:
        with self._lock:
            return len(self.predictions)

    def once_each(self) -> tuple[int, int]:
        """(distinct tasks with a prediction, tasks with more than one)."""
        by_task = self.predictions_by_task()
        return len(by_task), sum(1 for found in by_task.values() if len(found) > 1)


# --- processes ----------------------------------------------------------------------------------
def tree_rss(pid: int) -> dict[str, float]:
    """RSS in MiB of a process and its children (a Celery worker: main process + prefork children)."""
    try:
        main = psutil.Process(pid)
        children = main.children(recursive=True)
        main_rss = main.memory_info().rss
        child_rss = [child.memory_info().rss for child in children]
    except psutil.Error:
        return {"main_mib": 0.0, "children_mib": 0.0, "total_mib": 0.0}
    mib = 1024 * 1024
    return {
        "main_mib": main_rss / mib,
        "children_mib": sum(child_rss) / mib,
        "total_mib": (main_rss + sum(child_rss)) / mib,
    }


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live children."""
    total = 0.0
    try:
        main = psutil.Process(pid)
        for proc in [main, *main.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


class Stack:
    """Every process and Redis prefix of one benchmark run; ``close()`` stops and removes them all."""

    def __init__(self, workdir: Path, redis_url: str, run_id: str | None = None) -> None:
        self.workdir = workdir
        self.redis_url = redis_url
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.redis = redis.Redis.from_url(redis_url)
        self.prefixes: list[str] = []
        self.processes: list[BackendProcess | subprocess.Popen] = []
        self.servers: list[TimedLabelStudio] = []
        self.fake: FakeOpenAIControl | None = None
        self.fake_process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        workdir.mkdir(parents=True, exist_ok=True)

    def prefix(self, name: str) -> str:
        prefix = f"llm-backend-bench-{self.run_id}-{name}"
        self.prefixes.append(prefix)
        return prefix

    # --- the fake LLM ---
    def start_fake_llm(self) -> FakeOpenAIControl:
        port = free_port()
        log_file = (self.workdir / "fake_llm.log").open("ab")
        self.fake_process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port)],
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(self.fake_process)
        self.fake = FakeOpenAIControl(f"http://127.0.0.1:{port}")
        wait_until(self.fake.healthy, 20, "fake LLM")
        return self.fake

    # --- Label Studio ---
    def label_studio(self) -> TimedLabelStudio:
        server = TimedLabelStudio()
        server.__enter__()
        self.servers.append(server)
        return server

    def drop_label_studio(self, server: TimedLabelStudio) -> None:
        if server in self.servers:
            self.servers.remove(server)
            server.__exit__(None, None, None)

    # --- llm-backend ---
    def env(self, prefix: str, **overrides: Any) -> dict[str, str]:
        assert self.fake is not None, "start the fake LLM first"
        values = {
            "REDIS_URL": self.redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": f"{self.fake.url}/v1",
            "ALLOWED_PRIVATE_HOSTS": "127.0.0.1",  # the Label Studio stand-in, named by /setup
            "LOG_LEVEL": "WARNING",
        } | {key: str(value) for key, value in overrides.items()}
        return backend_env(**values)

    def api(self, prefix: str, *, workers: int = API_WORKERS, threads: int = API_THREADS, **env: Any) -> Api:
        port = free_port()
        name = f"api-{prefix.rsplit('-', 1)[-1]}-{port}"
        process = BackendProcess(
            ["api", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--threads", str(threads)],
            self.env(prefix, **env),
            self.workdir / f"{name}.log",
        )
        self._started(process.start())
        api = Api(f"http://127.0.0.1:{port}", process)
        try:
            wait_until(api.healthy, 60, f"llm-backend api on port {port}", interval=0.2)
        except TimeoutError:
            raise TimeoutError(f"llm-backend api did not answer /health:\n{process.log[-3000:]}") from None
        return api

    def workers(self, prefix: str, count: int, *, concurrency: int = 1, **env: Any) -> list[BackendProcess]:
        """``count`` worker processes (``--concurrency`` prefork children each), started in parallel."""
        started = []
        for _ in range(count):
            name = f"bench-{uuid.uuid4().hex[:8]}"
            process = BackendProcess(
                [
                    "worker",
                    "--concurrency",
                    str(concurrency),
                    "-n",
                    f"{name}@%h",
                ],
                self.env(prefix, **({"LOG_LEVEL": "INFO"} | env)),
                self.workdir / f"worker-{name}.log",
            )
            started.append(self._started(process.start()))
        for process in started:
            process.wait_for_log(" ready.", timeout=90)
        return started

    def _started(self, process: BackendProcess) -> BackendProcess:
        with self._lock:
            self.processes.append(process)
        return process

    def stop(self, process: BackendProcess) -> None:
        process.stop(timeout=20)
        with self._lock:
            if process in self.processes:
                self.processes.remove(process)

    def stop_backends(self) -> None:
        """Stop every llm-backend process (after a failed scenario); the fake LLM stays."""
        for process in [p for p in self.processes if isinstance(p, BackendProcess)]:
            self.stop(process)
        for server in list(self.servers):
            self.drop_label_studio(server)

    def close_api(self, api: Api) -> None:
        api.http.close()
        self.stop(api.process)

    # --- Redis ---
    def delete_keys(self, prefix: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        for key in self.redis.scan_iter(f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += self.redis.delete(*batch)
                batch = []
        if batch:
            deleted += self.redis.delete(*batch)
        return deleted

    def close(self) -> None:
        """Stop everything started (workers and APIs first, the fake LLM last) and drop our keys."""
        for process in reversed(list(self.processes)):
            try:
                if isinstance(process, BackendProcess):
                    process.stop(timeout=20)
                elif process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
            except (ProcessLookupError, PermissionError):
                pass
        self.processes.clear()
        for server in list(self.servers):
            self.drop_label_studio(server)
        for prefix in self.prefixes:
            try:
                self.delete_keys(prefix)
            except redis.RedisError as exc:
                log(f"could not delete keys {prefix}:*: {exc}")


class Api:
    """A running ``llm-backend api`` and the ML backend protocol calls the benchmarks make."""

    def __init__(self, url: str, process: BackendProcess) -> None:
        self.url, self.process = url, process
        self.http = Http(url)

    def healthy(self) -> bool:
        if self.process.process.poll() is not None:
            raise RuntimeError(f"llm-backend api exited:\n{self.process.log[-3000:]}")
        probe = Http(self.url, timeout=2)
        try:
            status, _, _ = probe.request("GET", "/health")
            return status == 200
        except OSError:
            return False
        finally:
            probe.close()

    def call(self, method: str, path: str, body: bytes | dict | None = None) -> tuple[Any, float]:
        status, payload, elapsed = self.http.request(method, path, body)
        if status != 200:
            raise RuntimeError(f"{method} {path} answered {status}: {str(payload)[:500]}")
        return payload, elapsed

    def setup_project(self, project: int, label_studio: TimedLabelStudio, prompt: str = PROMPT) -> str:
        """``/setup`` as Label Studio sends it, then a submitted annotation's prompt; the model version."""
        self.call(
            "POST",
            "/setup",
            {
                "project": f"{project}.{PROJECT_TS}",
                "schema": CONFIG_XML,
                "hostname": label_studio.url,
                "access_token": label_studio.token,
            },
        )
        event = {
            "action": "ANNOTATION_CREATED",
            "project": {"id": project},
            "annotation": {"result": [{"from_name": "prompt", "value": {"text": [prompt]}}]},
        }
        payload, _ = self.call("POST", "/webhook", event)
        return payload["model_version"]

    def job(self, job_id: str) -> dict:
        return self.call("GET", f"/jobs/{job_id}")[0]


# --- request bodies -----------------------------------------------------------------------------
WORDS = (
    "oh great another monday meeting that could have been an email what a surprise the printer jammed again "
    "I just love waiting in line for hours thanks for nothing the weather is lovely today said nobody ever"
).split()


def task_text(i: int, salt: str = "") -> str:
    """About 120 characters of text, different for every task; the word ``even`` on even ids."""
    words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(18)]
    return f"{salt}task {i}: {' '.join(words)} {'even' if i % 2 == 0 else 'odd'}"


def batch_body(
    project: int, count: int, salt: str = "", start: int = 0, held_by: FakeLabelStudio | None = None
) -> bytes:
    """A Retrieve Predictions of ``count`` tasks; ``held_by`` the Label Studio stand-in that holds them (the
    workers predict the data Label Studio holds, read per chunk)."""
    tasks = [{"id": start + i, "data": {"text": task_text(start + i, salt)}} for i in range(count)]
    if held_by is not None:
        held_by.hold_tasks(project, tasks)
    body = {"tasks": tasks, "project": f"{project}.{PROJECT_TS}", "label_config": CONFIG_XML}
    return json.dumps(body).encode()


def interactive_body(project: int, task_id: int, text: str, prompt: str) -> bytes:
    context = {"result": [{"from_name": "prompt", "to_name": "text", "type": "textarea", "value": {"text": [prompt]}}]}
    body = {
        "tasks": [{"id": task_id, "data": {"text": text}}],
        "project": f"{project}.{PROJECT_TS}",
        "label_config": CONFIG_XML,
        "params": {"context": context},
    }
    return json.dumps(body).encode()


def percentiles(values: list[float], points: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (no interpolation), plus mean/min/max; empty input gives NaN."""
    if not values:
        return {f"p{p:g}": float("nan") for p in points} | {"mean": float("nan"), "n": 0}
    ordered = sorted(values)
    out = {}
    for p in points:
        rank = max(1, int(-(-p * len(ordered) // 100)))  # ceil(p/100 * n)
        out[f"p{p:g}"] = ordered[min(rank, len(ordered)) - 1]
    out |= {"mean": sum(ordered) / len(ordered), "min": ordered[0], "max": ordered[-1], "n": len(ordered)}
    return out
