"""Starting and stopping real ``llm-backend`` processes for the integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

LLM_BACKEND = str(Path(sys.executable).with_name("llm-backend"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backend_env(**overrides: str) -> dict[str, str]:
    """The machine's environment without any LLM settings of its own, plus ``overrides``."""
    env = {key: value for key, value in os.environ.items() if key not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return env | overrides


def llm_backend_env(llm_url: str, redis_prefix: str, **overrides: str) -> dict[str, str]:
    """What every backend process of the tests gets: the real Redis, our prefix, the fake LLM."""
    from tests.conftest import STAND_IN_HOST, TEST_API_KEY, real_redis_url

    defaults = {
        "REDIS_URL": real_redis_url(),
        "REDIS_KEY_PREFIX": redis_prefix,
        "OPENAI_API_KEY": TEST_API_KEY,
        "OPENAI_BASE_URL": f"{llm_url}/v1",
        "ALLOWED_PRIVATE_HOSTS": STAND_IN_HOST,  # the Label Studio stand-ins, named by /setup (see conftest)
    }
    return backend_env(**(defaults | overrides))


class BackendProcess:
    """One ``llm-backend`` command in its own session, so a kill reaches its children too; ``launcher`` runs it
    (e.g. in a network namespace of the test's own: tests/integration/hosts.py), then execs it."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, launcher: Sequence[str] = ()) -> None:
        self.args, self.env, self.log_path, self.launcher = args, env, log_path, list(launcher)
        self.process: subprocess.Popen | None = None

    def start(self) -> BackendProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.launcher, LLM_BACKEND, *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log:
            assert self.process.poll() is None, f"{self.args[0]} exited:\n{self.log}"
            assert time.monotonic() < deadline, f"{text!r} not seen in {timeout} s:\n{self.log}"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean-up, no acknowledgements."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20) -> None:
        if not self.process or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def prepare_project_over_http(
    api: str, project: int, label_studio_url: str, token: str, config: str, prompt: str = "Sarcastic?"
) -> None:
    """Do what Label Studio does for a project: /setup with its host and token, then submit a prompt."""
    import httpx

    setup = {"project": f"{project}.1", "schema": config, "hostname": label_studio_url, "access_token": token}
    httpx.post(f"{api}/setup", json=setup, timeout=10).raise_for_status()
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": project},
        "annotation": {"result": [{"from_name": "prompt", "value": {"text": [prompt]}}]},
    }
    httpx.post(f"{api}/webhook", json=event, timeout=10).raise_for_status()


def wait_for_job(
    status: Callable[[], dict], until: Callable[[dict], bool], workers: Sequence[BackendProcess], timeout: float
) -> dict:
    """Read a job's status until ``until`` holds; fails at once when the newest worker process exited (a test may
    have killed the ones before), and after ``timeout`` seconds, with the status and that worker's log."""
    deadline = time.monotonic() + timeout
    while not until(current := status()):
        assert workers[-1].process.poll() is None, f"the worker exited:\n{workers[-1].log}"
        assert time.monotonic() < deadline, f"not there in {timeout} s: {current}\n{workers[-1].log[-3000:]}"
        time.sleep(0.1)
    return current
