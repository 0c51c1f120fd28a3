"""The threaded HTTP server the fakes run on: on loopback, or on an address of the test's own network."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-answer (a killed worker, a timed-out call) are normal in these tests."""

    daemon_threads = True
    request_queue_size = 1024  # a benchmark opens hundreds of connections at once; the default 5 drops them

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class BackgroundServer:
    """Serves ``handler`` on a free port (or ``port``) of ``host`` (loopback unless told) in a thread, as a
    context manager."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0, host: str = "127.0.0.1") -> None:
        self._server = QuietServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
