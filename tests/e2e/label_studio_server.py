"""A real Label Studio for the end-to-end tests: installed once, migrated once, started per session.

Label Studio keeps its own pins, so it lives in its own venv under ~/.cache (keyed by version,
rebuilt when incomplete).  A data dir migrated once is copied for each session, which cuts start-up
from about a minute to a few seconds.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

VERSION = "1.23.2"
CACHE = Path(os.environ.get("LLM_BACKEND_CACHE", Path.home() / ".cache" / "llm-backend"))
VENV = CACHE / f"label-studio-{VERSION}"
TEMPLATE = CACHE / f"label-studio-{VERSION}-data"
USER, PASSWORD = "admin@example.com", "e2e-password-123"
TOKEN = "e2e0123456789abcdef0123456789abcdef0123"  # a legacy token: 40 characters


@contextmanager
def _cache_lock() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_installed() -> Path:
    """The venv's python, installing ``label-studio==VERSION`` into it if needed (about 90 s)."""
    python = VENV / "bin" / "python"
    with _cache_lock():
        if not (VENV / ".installed").exists():
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    f"label-studio=={VERSION}",
                ],
                check=True,
            )
            (VENV / ".installed").touch()
    return python


def _environment(port: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("USERNAME", "PASSWORD", "PORT", "HOST") and not key.startswith(("LABEL_STUDIO_", "DJANGO"))
    }
    return env | {
        "LABEL_STUDIO_USERNAME": USER,
        "LABEL_STUDIO_PASSWORD": PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "LABEL_STUDIO_HOST": f"http://127.0.0.1:{port}",
    }


class LabelStudioServer:
    def __init__(self, python: Path, data_dir: Path, port: int, log_path: Path) -> None:
        self.python, self.data_dir, self.port, self.log_path = python, data_dir, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 300) -> LabelStudioServer:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.python),
                    "-m",
                    "label_studio.server",
                    "start",
                    "--no-browser",
                    "--internal-host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=_environment(self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/api/version", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Label Studio did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def fresh_data_dir(python: Path, target: Path, port: int, log_path: Path) -> Path:
    """A copy of a data dir migrated once (with our user and token in it)."""
    with _cache_lock():
        if not (TEMPLATE / ".migrated").exists():
            shutil.rmtree(TEMPLATE, ignore_errors=True)
            LabelStudioServer(python, TEMPLATE, port, log_path).start().stop()
            (TEMPLATE / ".migrated").touch()
    shutil.copytree(TEMPLATE, target)
    return target
