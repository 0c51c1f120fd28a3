"""Serving the Flask app through gunicorn's threaded workers, configured from our own CLI."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from shared.domain.config import Settings


class _Application(BaseApplication):
    def __init__(self, settings: Settings, options: dict) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        # Built in each worker after the fork, so no Redis connection crosses a fork.
        from api import create_app

        return create_app(self._settings)


def serve(settings: Settings, *, host: str, port: int, workers: int, threads: int) -> None:
    _Application(
        settings,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": 120,
            "graceful_timeout": 30,
            "keepalive": 5,
            "loglevel": settings.log_level.lower(),
            "accesslog": "-",
            "proc_name": "llm-backend-api",
            "control_socket_disable": True,  # one shared path per user: two instances would collide
        },
    ).run()
