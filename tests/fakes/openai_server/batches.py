"""Files and the Batch API: upload, create, retrieve, cancel, list, and the batch's life on the fake's clock.

A batch answers ``validating`` when created, is ``in_progress`` from then on (its lines finish at an even pace
over ``batch_turnaround`` seconds, each answered by ``chat.complete`` exactly as live) and becomes
``completed``, ``expired`` (the window ran out: the lines not done go to the error file as ``batch_expired``)
or, after ``cancel``, ``cancelling`` then ``cancelled`` (the lines done so far). A batch whose input breaks the
rules (a line that is not a POST to the batch's endpoint, a repeated custom_id, two models) is ``failed``. The
state moves whenever a client looks, so no thread runs behind the tests. ``request_counts`` count the lines that
ran: ``completed`` answered 200, ``failed`` answered an error.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.fakes.openai_server.chat import complete
from tests.fakes.openai_server.errors import ApiError

if TYPE_CHECKING:
    from tests.fakes.openai_server.fake import FakeOpenAI

COMPLETION_WINDOWS = {"24h"}
ENDPOINTS = {"/v1/chat/completions"}
METADATA_KEYS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.content.decode().splitlines() if line.strip()]

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class FakeBatch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict | None
    created_at: float
    turnaround: float
    expires_after: float
    requests: list[dict]
    problems: list[dict]  # validation errors: the batch fails
    status: str = "validating"
    done: dict[int, dict] = field(default_factory=dict)  # input line index → its output or error line
    events: dict[str, float] = field(default_factory=dict)  # "in_progress_at", "completed_at", ... → when
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def succeeded(self) -> list[dict]:
        return [line for line in self.done.values() if line["response"]["status_code"] == 200]

    @property
    def failed(self) -> list[dict]:
        return [line for line in self.done.values() if line["response"]["status_code"] != 200]

    def due(self, at: float) -> int:
        """How many lines are done by ``at`` on the fake's clock."""
        if self.turnaround <= 0:
            return len(self.requests)
        share = max(0.0, at - self.created_at) / self.turnaround
        return min(len(self.requests), int(len(self.requests) * share))

    def to_api(self) -> dict:
        models = {request["body"].get("model") for request in self.requests if isinstance(request.get("body"), dict)}
        counts = {"total": len(self.requests), "completed": len(self.succeeded), "failed": len(self.failed)}
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_at),
            "expires_at": int(self.created_at + self.expires_after),
            **{name: int(at) for name, at in self.events.items()},
            "errors": {"object": "list", "data": self.problems} if self.problems else None,
            "request_counts": counts,
            "metadata": self.metadata,
            "model": next(iter(models), None),
            "usage": self._usage(),
        }

    def _usage(self) -> dict:
        usage = [line["response"]["body"]["usage"] for line in self.succeeded]
        return {
            "input_tokens": sum(u["prompt_tokens"] for u in usage),
            "input_tokens_details": {"cached_tokens": sum(u["prompt_tokens_details"]["cached_tokens"] for u in usage)},
            "output_tokens": sum(u["completion_tokens"] for u in usage),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": sum(u["total_tokens"] for u in usage),
        }


def upload(fake: FakeOpenAI, filename: str, purpose: str, content: bytes) -> StoredFile:
    """``POST /v1/files``; a batch input file is held to the provider's limits here, as it is there."""
    if purpose == "batch":
        _check_input_file(fake, content)
    return _store(fake, filename, purpose, content)


def create(fake: FakeOpenAI, params: dict) -> FakeBatch:
    """``POST /v1/batches``."""
    window, endpoint, metadata = params.get("completion_window"), params.get("endpoint"), params.get("metadata")
    if window not in COMPLETION_WINDOWS:
        raise ApiError(400, f"Invalid completion_window {window!r}: only '24h' is supported", param="completion_window")
    if endpoint not in ENDPOINTS:
        raise ApiError(400, f"Invalid endpoint {endpoint!r}: the fake batches {sorted(ENDPOINTS)}", param="endpoint")
    _check_metadata(metadata)
    source = fake.files.get(params.get("input_file_id"))
    if source is None or source.purpose != "batch":
        message = f"No batch input file with id {params.get('input_file_id')!r}: upload it with purpose 'batch'"
        raise ApiError(400, message, param="input_file_id")
    requests, problems = _read_requests(source, endpoint)
    with fake._lock:
        batch = FakeBatch(
            id=fake._next_id("batch_"),
            input_file_id=source.id,
            endpoint=endpoint,
            completion_window=window,
            metadata=metadata,
            created_at=fake.now(),
            turnaround=fake.batch_turnaround,
            expires_after=fake.batch_expires_after,
            requests=requests,
            problems=problems,
        )
        fake.batches[batch.id] = batch
    return batch


def observe(fake: FakeOpenAI, batch_id: str) -> FakeBatch:
    """The batch as a client sees it now: ``GET /v1/batches/{id}``."""
    with fake._batch_lock:
        batch = _find(fake, batch_id)
        _advance(fake, batch)
        return batch


def cancel(fake: FakeOpenAI, batch_id: str) -> FakeBatch:
    """``POST /v1/batches/{id}/cancel``: the lines done by now stay done, the rest never run."""
    with fake._batch_lock:
        batch = _find(fake, batch_id)
        _advance(fake, batch)
        if batch.status != "in_progress":
            raise ApiError(409, f"Cannot cancel a batch with status '{batch.status}'.")
        batch.status = "cancelling"
        batch.events["cancelling_at"] = fake.now()
        return batch


def listing(fake: FakeOpenAI, after: str | None, limit: int) -> dict:
    """``GET /v1/batches``: newest first, a cursor page."""
    with fake._batch_lock:
        batches = list(reversed(fake.batches.values()))
        if after:
            ids = [batch.id for batch in batches]
            batches = batches[ids.index(after) + 1 :] if after in ids else []
        for batch in batches[:limit]:
            _advance(fake, batch)
        page = [batch.to_api() for batch in batches[:limit]]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(batches) > limit,
    }


def _advance(fake: FakeOpenAI, batch: FakeBatch) -> None:
    now = fake.now()
    if batch.status == "validating":
        if batch.problems:
            batch.status, batch.events["failed_at"] = "failed", batch.created_at
            return
        batch.status, batch.events["in_progress_at"] = "in_progress", batch.created_at
    if batch.status == "cancelling":
        batch.status, batch.events["cancelled_at"] = "cancelled", now
        _finish(fake, batch, [])
    if batch.status != "in_progress":
        return
    expiry = batch.created_at + batch.expires_after
    if now >= expiry and batch.due(expiry) < len(batch.requests):
        _run(fake, batch, batch.due(expiry))
        batch.status, batch.events["expired_at"] = "expired", expiry
        left = [_line(fake, batch, i, None, EXPIRED) for i in range(len(batch.requests)) if i not in batch.done]
        _finish(fake, batch, left)
        return
    _run(fake, batch, batch.due(now))
    if len(batch.done) == len(batch.requests):
        batch.events["finalizing_at"] = batch.events["completed_at"] = now
        batch.status = "completed"
        _finish(fake, batch, [])


def _run(fake: FakeOpenAI, batch: FakeBatch, count: int) -> None:
    """Answer input lines until ``count`` are done, each as the live endpoint would."""
    for index in range(len(batch.done), count):
        request = batch.requests[index]
        custom_id = request["custom_id"]
        if custom_id in fake.batch_line_failures:
            status, message = fake.batch_line_failures[custom_id]
            response = {"status_code": status, "body": ApiError(status, message).payload()}
        else:
            try:
                body = complete(fake, request["body"], via="batch", custom_id=custom_id, batch_id=batch.id)
                response = {"status_code": 200, "body": body}
            except ApiError as error:
                response = {"status_code": error.status, "body": error.payload()}
        batch.done[index] = _line(fake, batch, index, response, None)


def _line(fake: FakeOpenAI, batch: FakeBatch, index: int, response: dict | None, error: dict | None) -> dict:
    if response is not None:
        response = {**response, "request_id": fake._next_id("req_")}
    custom_id = batch.requests[index]["custom_id"]
    return {"id": fake._next_id("batch_req_"), "custom_id": custom_id, "response": response, "error": error}


def _finish(fake: FakeOpenAI, batch: FakeBatch, not_run: list[dict]) -> None:
    """Write the output and error files, each in an order of its own, as the provider does."""
    shuffle = random.Random(batch.id).shuffle
    outputs, errors = batch.succeeded, batch.failed + not_run
    shuffle(outputs)
    shuffle(errors)
    if outputs:
        batch.output_file_id = _store(fake, f"{batch.id}_output.jsonl", "batch_output", _jsonl(outputs)).id
    if errors:
        batch.error_file_id = _store(fake, f"{batch.id}_error.jsonl", "batch_output", _jsonl(errors)).id


def _store(fake: FakeOpenAI, filename: str, purpose: str, content: bytes) -> StoredFile:
    with fake._lock:
        stored = StoredFile(fake._next_id("file-"), filename, purpose, content, int(fake.now()))
        fake.files[stored.id] = stored
    return stored


def _jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _find(fake: FakeOpenAI, batch_id: str) -> FakeBatch:
    if batch_id not in fake.batches:
        raise ApiError(404, f"No batch found with id '{batch_id}'.")
    return fake.batches[batch_id]


def _check_input_file(fake: FakeOpenAI, content: bytes) -> None:
    if len(content) > fake.batch_max_bytes:
        message = f"File is too large: {len(content)} bytes, a batch input file holds at most {fake.batch_max_bytes}."
        raise ApiError(400, message, param="file")
    count = sum(1 for line in content.splitlines() if line.strip())
    if count > fake.batch_max_requests:
        message = f"The batch input file has {count} requests, more than the {fake.batch_max_requests} allowed."
        raise ApiError(400, message, param="file")


def _check_metadata(metadata: dict | None) -> None:
    if metadata is None:
        return
    too_long = [k for k, v in metadata.items() if len(k) > METADATA_KEY_CHARS or len(str(v)) > METADATA_VALUE_CHARS]
    if len(metadata) > METADATA_KEYS or too_long:
        message = f"metadata holds at most {METADATA_KEYS} keys of {METADATA_KEY_CHARS} characters and values of "
        raise ApiError(400, message + f"{METADATA_VALUE_CHARS}", param="metadata")


def _read_requests(source: StoredFile, endpoint: str) -> tuple[list[dict], list[dict]]:
    """The input lines and what makes the batch fail in validation, one error per bad line."""
    requests, problems, seen, models = [], [], set(), {}
    for number, text in enumerate(source.content.decode().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            request = json.loads(text)
        except ValueError:
            problems.append(_problem("invalid_json_line", f"Line {number} is not JSON.", number))
            continue
        body = request.get("body") if isinstance(request, dict) else None
        if not isinstance(body, dict) or not isinstance(request.get("custom_id"), str):
            problems.append(_problem("invalid_request", "A line needs 'custom_id' and a 'body' object.", number))
            continue
        if request.get("method") != "POST" or request.get("url") != endpoint:
            message = f"Line {number} must be a POST to the batch's endpoint {endpoint}."
            problems.append(_problem("invalid_url", message, number, "url"))
        if request["custom_id"] in seen:
            message = f"The custom_id {request['custom_id']!r} is used more than once; each must be unique."
            problems.append(_problem("duplicate_custom_id", message, number, "custom_id"))
        seen.add(request["custom_id"])
        model = models.setdefault("model", body.get("model"))
        if body.get("model") != model:
            message = f"A batch input file holds requests for one model only: {model!r}, then {body.get('model')!r}."
            problems.append(_problem("mismatched_model", message, number, "body.model"))
        requests.append(request)
    if not requests and not problems:
        problems.append(_problem("empty_file", "The batch input file holds no requests.", None))
    return requests, problems


def _problem(code: str, message: str, line: int | None, param: str | None = None) -> dict:
    return {"code": code, "message": message, "line": line, "param": param}
