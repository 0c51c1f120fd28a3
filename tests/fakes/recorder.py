"""A loopback listener that records every request that reaches it and answers as a test says.

For the security tests: an endpoint a request names (does the operator's key reach it?), a Label Studio that
echoes its token in an error body, an LLM provider that hangs or trickles its answer a byte at a time.
``respond(request, handler)`` writes the answer (``send`` for an ordinary one); the default is 200 ``{}``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.server import BackgroundServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Respond = Callable[[Recorded, BaseHTTPRequestHandler], None]


def send(handler: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def chat_completion(text: str) -> dict:
    """The smallest body the openai client reads as a chat completion."""
    return {
        "id": "chatcmpl-recorder",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "recorder",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class RecordingServer(BackgroundServer):
    def __init__(self, respond: Respond | None = None, port: int = 0) -> None:
        self.requests: list[Recorded] = []
        self.closing = threading.Event()  # set on exit: answers that hang or trickle stop then
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # the head and the body go out in two writes: no 40 ms wait for an ACK

            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {key.lower(): value for key, value in self.headers.items()}
                recorded = Recorded(self.command, self.path, headers, body, time.monotonic())
                with server._lock:
                    server.requests.append(recorded)
                (respond or (lambda request, handler: send(handler, 200, {})))(recorded, self)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        super().__init__(Handler, port)

    def __exit__(self, *exc) -> None:
        self.closing.set()
        super().__exit__(*exc)

    def seen(self) -> str:
        """Everything that reached this listener, as one text: to look for a secret in it."""
        with self._lock:
            return "\n".join(
                f"{r.method} {r.path} {r.headers} {r.body.decode('utf-8', 'replace')}" for r in self.requests
            )

    def hang(self, handler: BaseHTTPRequestHandler) -> None:
        """Never answer (until the test ends)."""
        self.closing.wait()

    def trickle(self, handler: BaseHTTPRequestHandler, raw: bytes, every: float) -> None:
        """Send ``raw`` (a whole HTTP response, head included) one byte every ``every`` seconds."""
        for byte in raw:
            if self.closing.wait(every):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()


def http_response(status: int, payload: Any) -> bytes:
    """A whole HTTP/1.1 response as bytes, for ``RecordingServer.trickle``."""
    body = json.dumps(payload).encode()
    head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body
