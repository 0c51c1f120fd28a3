"""A Label Studio stand-in over real HTTP: serves uploaded files to requests carrying its token."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLabelStudio:
    def __init__(self, token: str) -> None:
        self.token = token
        self.files: dict[str, tuple[bytes, str]] = {}
        self.seen_authorization: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                fake.seen_authorization.append(self.headers.get("Authorization"))
                if self.headers.get("Authorization") != f"Token {fake.token}":
                    self.send_error(401)
                    return
                if self.path not in fake.files:
                    self.send_error(404)
                    return
                body, content_type = fake.files[self.path]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeLabelStudio:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
