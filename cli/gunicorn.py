"""Serving the Flask app through gunicorn's threaded workers, configured from our own CLI."""

from __future__ import annotations

import json
import socket
from typing import Any

from flask import Flask
from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from shared.domain.config import Settings


class _Captured:
    """A stand-in socket that keeps what gunicorn writes (its HTML error page) instead of sending it."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        self.data += data


class JsonErrorWorker(ThreadWorker):
    """gunicorn answers requests it cannot parse (a URL over 4 KB: 414, malformed headers: 400, …) itself,
    with an HTML page; this worker keeps gunicorn's status and logging and sends ``{"error": ...}`` instead,
    like every other answer of the API."""

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        page = _Captured()
        super().handle_error(req, page, addr, exc)
        status_line = page.data.split(b"\r\n", 1)[0].decode("latin-1")  # "HTTP/1.1 414 URI Too Long"
        _, status, reason = (status_line.split(" ", 2) + ["500", "Internal Server Error"])[:3]
        message = f"{reason}: {exc}" if status.startswith("4") else f"{reason}; see the backend's log"
        body = json.dumps({"error": message}).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except Exception:
            self.log.debug("Failed to send error message.")


class _Application(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any], llm_slots: int) -> None:
        self._settings = settings
        self._options = options
        self._llm_slots = llm_slots
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        # Built in each worker after the fork, so no Redis connection crosses a fork.
        from api import create_app

        return create_app(self._settings, llm_slots=self._llm_slots)


def options(settings: Settings, *, host: str, port: int, workers: int | None, threads: int | None) -> dict[str, Any]:
    """gunicorn's configuration: ``API_*`` settings, with the command's ``--workers`` and ``--threads`` over them."""
    return {
        "bind": f"{host}:{port}",
        "workers": settings.api_workers if workers is None else workers,
        "threads": settings.api_threads if threads is None else threads,
        "worker_class": f"{JsonErrorWorker.__module__}.{JsonErrorWorker.__qualname__}",
        "timeout": settings.api_timeout,
        "graceful_timeout": settings.api_graceful_timeout,
        "keepalive": settings.api_keepalive,
        "loglevel": settings.log_level.lower(),
        "accesslog": "-",
        "proc_name": "llm-backend-api",
        "control_socket_disable": True,  # one shared path per user: two instances would collide
    }


def serve(settings: Settings, *, host: str, port: int, workers: int | None = None, threads: int | None = None) -> None:
    # The master imports the SDK once before forking: its first import can take longer than the 3 s Label Studio
    # gives /setup (its ML_TIMEOUT_SETUP), and no worker's first /setup or /predict should pay for it.
    import label_studio_sdk.label_interface  # noqa: F401

    from api.capacity import slots_for

    configured = options(settings, host=host, port=port, workers=workers, threads=threads)
    _Application(settings, configured, llm_slots=slots_for(configured["threads"])).run()
