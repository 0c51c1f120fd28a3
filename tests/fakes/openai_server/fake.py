"""The fake's state: what tests set (replies, failures, refusals, batch behaviour) and what it records."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.fakes.openai_server.tokens import PrefixCache

if TYPE_CHECKING:
    from tests.fakes.openai_server.batches import FakeBatch, StoredFile
    from tests.fakes.openai_server.chat import Reply
    from tests.fakes.openai_server.records import Completion, RecordedRequest

DAY = 24 * 3600.0


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    message: str


@dataclass
class FakeOpenAI:
    # What the model answers. ``reply(messages, index)`` gives choice ``index``: a str (text content), a dict (the
    # JSON instance for response_format / tool calls, JSON text otherwise) or an Answer (logprob, verbatim).
    # None: echo the last user text (chat.default_reply), or a default instance of the requested schema.
    reply: Reply | None = None
    logprob: float = -0.01  # every answer token's logprob unless the reply's Answer says otherwise
    refuse: set[str] = field(default_factory=set)  # "response_format", "json_schema", "tools", "logprobs": a 400
    delay: float | Callable[[list[dict]], float] = 0.0  # seconds each live chat answer waits (or: its messages → s)
    fail_every: int = 0  # when set, every Nth chat request fails with ``fail_every_status`` and Retry-After: 1
    fail_every_status: int = 429
    # Batch API: a batch is in progress from its creation and done ``batch_turnaround`` seconds later (its lines
    # finish at an even pace), unless ``batch_expires_after`` (the 24 h window) comes first. Both are read when
    # the batch is created. ``batch_line_failures`` maps a custom_id to the (status, message) its line fails with.
    batch_turnaround: float = 1.0
    batch_expires_after: float = DAY
    batch_line_failures: dict[str, tuple[int, str]] = field(default_factory=dict)
    batch_max_requests: int = 50_000
    batch_max_bytes: int = 200 * 1024 * 1024  # what the pinned openai client documents for a batch input file
    clock_offset: float = 0.0  # seconds the fake's clock is ahead of the wall clock: see advance_clock
    # Records
    in_flight: int = 0  # live chat calls being answered now
    peak_in_flight: int = 0
    call_spans: list[tuple[float, float, str]] = field(default_factory=list, repr=False)  # (start, end, messages)
    requests: list[RecordedRequest] = field(default_factory=list, repr=False)
    completions: list[Completion] = field(default_factory=list, repr=False)
    files: dict[str, StoredFile] = field(default_factory=dict, repr=False)
    batches: dict[str, FakeBatch] = field(default_factory=dict, repr=False)
    _failures: deque = field(default_factory=deque, repr=False)
    _prefix_cache: PrefixCache = field(default_factory=PrefixCache, repr=False)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _batch_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def answering(self, messages: list[dict]) -> Iterator[None]:
        """Count a live chat call while it is answered, and record when it ran."""
        started = time.monotonic()
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
                self.call_spans.append((started, time.monotonic(), str(messages)))

    def reset(self) -> None:
        """Back to a fresh fake: every setting to its default, every record cleared."""
        with self._lock, self._batch_lock:
            for spec in dataclasses.fields(self):
                if spec.name in ("_lock", "_batch_lock"):
                    continue
                fresh = spec.default if spec.default_factory is dataclasses.MISSING else spec.default_factory()
                setattr(self, spec.name, fresh)

    def fail_next(self, status: int, *, times: int = 1, headers: dict | None = None, message: str = "") -> None:
        """Queue ``times`` error answers ahead of the next live chat answers."""
        with self._lock:
            for _ in range(times):
                self._failures.append(_Failure(status, headers or {}, message or f"fake error {status}"))

    def now(self) -> float:
        """The fake's clock: wall time moved on by ``advance_clock``, so tests need not wait for batches."""
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.split("?")[0].endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.split("?")[0].endswith("/embeddings")]

    @property
    def live_completions(self) -> list[Completion]:
        return [c for c in self.completions if c.via == "live"]

    @property
    def batch_completions(self) -> list[Completion]:
        return [c for c in self.completions if c.via == "batch"]

    @property
    def uploads(self) -> list[StoredFile]:
        """The batch input files clients uploaded (not the output and error files the fake wrote)."""
        return [f for f in self.files.values() if f.purpose == "batch"]

    def asked_more_than_once(self) -> dict[str, int]:
        """Prompts (the messages as JSON) the model answered more than once, live and in batches together."""
        counts = Counter(json.dumps(c.body.get("messages"), sort_keys=True) for c in self.completions)
        return {prompt: count for prompt, count in counts.items() if count > 1}

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

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids)}"
