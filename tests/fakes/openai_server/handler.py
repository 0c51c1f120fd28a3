"""HTTP: the routes of the fake, each recorded in ``FakeOpenAI.requests`` with what it answered."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.fakes.openai_server import batches
from tests.fakes.openai_server.chat import complete
from tests.fakes.openai_server.embeddings import embed
from tests.fakes.openai_server.errors import ApiError
from tests.fakes.openai_server.fake import FakeOpenAI
from tests.fakes.openai_server.records import RecordedRequest

DEFAULT_PAGE = 20


def _chat(fake: FakeOpenAI, request: _Request, match: re.Match) -> dict:
    started = time.perf_counter()
    fake._count_request()
    failure = fake._take_failure()
    if failure:
        raise ApiError(failure.status, failure.message, code=str(failure.status), kind="fake", headers=failure.headers)
    body = request.json()
    fake._admit(body)
    messages = body.get("messages") or []
    with fake.answering(messages) as epoch:
        delay = fake.latency(messages)
        if delay:
            time.sleep(delay)
        answer = complete(fake, body, via="live", epoch=epoch)
    if fake.current(epoch):
        fake._count_answer(messages, answer, time.perf_counter() - started)
    return answer


def _configure(fake: FakeOpenAI, request: _Request, match: re.Match) -> dict:
    try:
        return fake.configure(**request.json())
    except (ValueError, TypeError) as exc:
        raise ApiError(400, str(exc)) from None


def _clear(fake: FakeOpenAI, request: _Request, match: re.Match) -> dict:
    fake.clear()
    return {"status": "cleared"}


def _upload(fake: FakeOpenAI, request: _Request, match: re.Match) -> dict:
    fields = request.form()
    if "file" not in fields or "purpose" not in fields:
        raise ApiError(400, "A file upload needs the fields 'file' and 'purpose'", param="file")
    filename, content = fields["file"]
    return batches.upload(fake, filename or "upload", fields["purpose"][1].decode(), content).to_api()


def _file(fake: FakeOpenAI, match: re.Match):
    if match["id"] not in fake.files:
        raise ApiError(404, f"No such File object: {match['id']}", param="id")
    return fake.files[match["id"]]


def _delete_file(fake: FakeOpenAI, request: _Request, match: re.Match) -> dict:
    with fake._lock:
        stored = _file(fake, match)
        del fake.files[stored.id]
    return {"id": stored.id, "object": "file", "deleted": True}


def _list_batches(fake: FakeOpenAI, request: _Request, match: re.Match) -> dict:
    query = parse_qs(request.query)
    return batches.listing(fake, query.get("after", [None])[0], int(query.get("limit", [DEFAULT_PAGE])[0]))


ID = r"(?P<id>[^/]+)"
ROUTES: list[tuple[str, re.Pattern, Callable]] = [
    ("POST", re.compile(r".*/chat/completions"), _chat),
    ("POST", re.compile(r".*/embeddings"), lambda fake, request, match: embed(request.json())),
    ("POST", re.compile(r"/v1/files"), _upload),
    ("GET", re.compile(rf"/v1/files/{ID}/content"), lambda fake, request, match: _file(fake, match).content),
    ("GET", re.compile(rf"/v1/files/{ID}"), lambda fake, request, match: _file(fake, match).to_api()),
    ("DELETE", re.compile(rf"/v1/files/{ID}"), _delete_file),
    ("POST", re.compile(r"/v1/batches"), lambda fake, request, match: batches.create(fake, request.json()).to_api()),
    ("GET", re.compile(r"/v1/batches"), _list_batches),
    ("GET", re.compile(rf"/v1/batches/{ID}"), lambda fake, request, match: batches.observe(fake, match["id"]).to_api()),
    (
        "POST",
        re.compile(rf"/v1/batches/{ID}/cancel"),
        lambda fake, request, match: batches.cancel(fake, match["id"]).to_api(),
    ),
    # The control of a fake in its own process (``control.FakeOpenAIControl``), and its health for a waiting client.
    ("GET", re.compile(r"/health"), lambda fake, request, match: {"status": "UP"}),
    ("GET", re.compile(r"/_fake/stats"), lambda fake, request, match: fake.stats()),
    (
        "GET",
        re.compile(r"/_fake/in_flight"),
        lambda fake, request, match: {"in_flight": fake.in_flight, "ok": fake.counters.ok},
    ),
    ("POST", re.compile(r"/_fake/config"), _configure),
    ("POST", re.compile(r"/_fake/clear"), _clear),
    ("POST", re.compile(r"/_fake/timings"), lambda fake, request, match: fake.take_timings()),
]


class _Request:
    def __init__(self, path: str, content_type: str, raw: bytes) -> None:
        parts = urlsplit(path)
        self.path, self.query = parts.path, parts.query
        self.content_type = content_type
        self.raw = raw

    def json(self) -> dict:
        try:
            return json.loads(self.raw or b"{}")
        except ValueError:
            raise ApiError(400, "The body is not valid JSON.") from None

    def form(self) -> dict[str, tuple[str | None, bytes]]:
        """A multipart/form-data body as {field: (filename, bytes)}."""
        head = f"Content-Type: {self.content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.raw)
        if not message.is_multipart():
            raise ApiError(400, "A file upload is sent as multipart/form-data.", param="file")
        return {
            part.get_param("name", header="content-disposition"): (part.get_filename(), part.get_payload(decode=True))
            for part in message.iter_parts()
        }


def make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # the head and the body go out in two writes: no 40 ms wait for an ACK

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            expected = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(expected)
            if len(raw) < expected:
                # The client died mid-request (a test SIGKILLs workers): no provider would see this call.
                self.close_connection = True
                return
            request = _Request(self.path, self.headers.get("Content-Type", ""), raw)
            record = None
            if fake.keep_records:
                headers = {key.lower(): value for key, value in self.headers.items()}
                record = RecordedRequest(
                    self.path, headers, _json_or_empty(raw), time.time(), client=self.client_address[0]
                )
                fake._record(record)
            status, answer, extra = 200, None, {}
            try:
                answer = self._route(method, request)
            except ApiError as error:
                status, answer, extra = error.status, error.payload(), error.headers
                if record:
                    record.error = error.message
            if record:
                record.status = status
            self._send(status, answer, extra)

        def _route(self, method: str, request: _Request):
            for route_method, pattern, route in ROUTES:
                match = pattern.fullmatch(request.path)
                if match and route_method == method:
                    return route(fake, request, match)
            raise ApiError(404, f"no route {method} {request.path}")

        def _send(self, status: int, answer: dict | bytes, headers: dict) -> None:
            body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            kind = "application/octet-stream" if isinstance(answer, bytes) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _json_or_empty(raw: bytes) -> dict:
    """The JSON body to record; {} for an empty or non-JSON one (a file upload)."""
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {}
