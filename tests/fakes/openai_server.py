"""A fake OpenAI-compatible server that tests reach over real HTTP through the real ``openai`` client.

It answers ``/v1/chat/completions`` (OpenAI, Ollama) and
``/openai/deployments/<name>/chat/completions`` (Azure), records every request, and can be told to
fail: ``fail_next(status, headers, times)`` queues errors ahead of normal answers.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.fakes.server import BackgroundServer


def default_reply(messages: list[dict], index: int) -> str:
    """Echo the last user text, so tests can see what the model was sent."""
    content = messages[-1]["content"]
    if isinstance(content, list):
        content = " ".join(part.get("text", "") for part in content if part.get("type") == "text")
    suffix = f" #{index + 1}" if index else ""
    return f"ANSWER to: {content}{suffix}"


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict
    at: float


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    message: str


@dataclass
class FakeOpenAI:
    reply: Callable[[list[dict], int], str] = default_reply
    delay: float = 0.0
    fail_every: int = 0  # when set, every Nth chat request fails with ``fail_every_status`` and Retry-After: 1
    fail_every_status: int = 429
    requests: list[RecordedRequest] = field(default_factory=list)
    _failures: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._failures.clear()
        self.reply = default_reply
        self.delay = 0.0
        self.fail_every = 0
        self.fail_every_status = 429

    def fail_next(self, status: int, *, times: int = 1, headers: dict | None = None, message: str = "") -> None:
        with self._lock:
            for _ in range(times):
                self._failures.append(_Failure(status, headers or {}, message or f"fake error {status}"))

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.split("?")[0].endswith("/chat/completions")]

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            if self._failures:
                return self._failures.popleft()
            if self.fail_every and len(self.chat_requests) % self.fail_every == 0:
                return _Failure(self.fail_every_status, {"Retry-After": "1"}, f"fake {self.fail_every_status}")
            return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {key.lower(): value for key, value in self.headers.items()}
            fake._record(RecordedRequest(self.path, headers, body, time.time()))
            if not self.path.split("?")[0].endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            failure = fake._take_failure()
            if failure:
                error = {"error": {"message": failure.message, "type": "fake", "code": str(failure.status)}}
                self._send(failure.status, error, failure.headers)
                return
            if fake.delay:
                time.sleep(fake.delay)
            messages = body.get("messages", [])
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": fake.reply(messages, i)},
                    "finish_reason": "stop",
                }
                for i in range(int(body.get("n") or 1))
            ]
            self._send(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": choices,
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                },
            )

    return Handler


class FakeOpenAIServer(BackgroundServer):
    """Runs a FakeOpenAI on a free loopback port (or ``port``) in a background thread."""

    def __init__(self, port: int = 0) -> None:
        self.fake = FakeOpenAI()
        super().__init__(_handler(self.fake), port)
