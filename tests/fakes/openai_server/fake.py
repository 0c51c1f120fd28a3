"""The fake's state: what tests set (replies, failures, refusals, latency, rate limits, batch behaviour) and what
it records (every request and completion for tests, counters for a fake in its own process)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.fakes.openai_server.limits import COMPLETION_TOKENS_GUESS, RateLimited, RateLimits
from tests.fakes.openai_server.records import Counters
from tests.fakes.openai_server.tokens import PrefixCache, prompt_tokens

if TYPE_CHECKING:
    from tests.fakes.openai_server.batches import FakeBatch, StoredFile
    from tests.fakes.openai_server.chat import Reply
    from tests.fakes.openai_server.records import Completion, RecordedRequest

DAY = 24 * 3600.0
CONFIGURABLE = ("delay", "jitter", "rpm", "tpm", "burst")  # what ``configure`` (and ``/_fake/config``) may set
# What ``clear`` empties; ``in_flight`` is left to the calls still being answered.
RECORDS = (
    "peak_in_flight",
    "call_spans",
    "requests",
    "completions",
    "files",
    "batches",
    "counters",
    "timings",
    "_limits",
)
BENCH_TOKEN = re.compile(r"\[bench:([A-Za-z0-9_.-]+)\]")  # a prompt holding it has its server time recorded


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
    jitter: float = 0.0  # ± seconds, uniform, added to each live chat answer's delay
    # A provider's rate limits (``limits``): requests and tokens per minute (0: none), in buckets holding ``burst``
    # seconds' worth; a live chat call over one is refused at once with a 429 and Retry-After.
    rpm: float = 0.0
    tpm: float = 0.0
    burst: float = 1.0
    keep_records: bool = True  # False: only ``counters`` and ``timings``, as in its own process (nobody reads more)
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
    counters: Counters = field(default_factory=Counters, repr=False)
    timings: dict[str, float] = field(default_factory=dict, repr=False)  # server seconds per ``[bench:<token>]``
    _limits: RateLimits | None = field(default=None, repr=False)
    _failures: deque = field(default_factory=deque, repr=False)
    _prefix_cache: PrefixCache = field(default_factory=PrefixCache, repr=False)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False)
    _epoch: int = field(default=0, repr=False)  # how many times the records were cleared: see ``answering``
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _batch_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def answering(self, messages: list[dict]) -> Iterator[int]:
        """Count a live chat call while it is answered, and record when it ran.  Yields the records' epoch: a call
        still being answered when the records are cleared (a test's worker stopped with calls in flight) is answered
        but counted and recorded nowhere, so it never shows up among the next test's calls."""
        started = time.monotonic()
        with self._lock:
            epoch = self._epoch
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield epoch
        finally:
            with self._lock:
                if self.current(epoch):
                    self.in_flight -= 1
                    if self.keep_records:
                        self.call_spans.append((started, time.monotonic(), str(messages)))

    def current(self, epoch: int) -> bool:
        """Whether the records have not been cleared since ``epoch`` (``answering`` gives it)."""
        return epoch == self._epoch

    def reset(self) -> None:
        """Back to a fresh fake: every setting to its default, every record cleared."""
        self._restore(lambda name: name not in ("_lock", "_batch_lock", "_epoch"))

    def clear(self) -> None:
        """Every record and counter cleared, the settings kept: a benchmark's next run starts afresh."""
        self._restore(lambda name: name in RECORDS)

    def _restore(self, chosen: Callable[[str], bool]) -> None:
        with self._lock, self._batch_lock:
            self._epoch += 1
            for spec in dataclasses.fields(self):
                if chosen(spec.name):
                    fresh = spec.default if spec.default_factory is dataclasses.MISSING else spec.default_factory()
                    setattr(self, spec.name, fresh)

    def configure(self, **values: float) -> dict[str, float]:
        """Set any of ``CONFIGURABLE`` (a fake in its own process is told through ``/_fake/config``)."""
        unknown = sorted(set(values) - set(CONFIGURABLE))
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]}: the fake's settings are {', '.join(CONFIGURABLE)}")
        with self._lock:
            for name, value in values.items():
                setattr(self, name, float(value))
            return {name: getattr(self, name) for name in CONFIGURABLE}

    def latency(self, messages: list[dict]) -> float:
        """Seconds this live chat call waits before it is answered."""
        delay = self.delay(messages) if callable(self.delay) else self.delay
        return max(0.0, delay + random.uniform(-self.jitter, self.jitter)) if self.jitter else delay

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

    def _count_request(self) -> None:
        with self._lock:
            self.counters.requests += 1
            if self.counters.first_request_at is None:
                self.counters.first_request_at = time.time()

    def _admit(self, body: dict) -> None:
        """Raise RateLimited when this live chat call goes over ``rpm`` or ``tpm``."""
        if not (self.rpm or self.tpm):
            return
        tokens = prompt_tokens(body) + COMPLETION_TOKENS_GUESS * int(body.get("n") or 1)
        with self._lock:
            if self._limits is None or self._limits.settings != (self.rpm, self.tpm, self.burst):
                self._limits = RateLimits(self.rpm, self.tpm, self.burst)
            try:
                self._limits.admit(tokens)
            except RateLimited as refusal:
                self.counters.rate_limited += 1
                self.counters.limited_times.append(time.time())
                if refusal.which == "requests":
                    self.counters.rejected_rpm += 1
                else:
                    self.counters.rejected_tpm += 1
                raise

    def _count_answer(self, messages: list[dict], answer: dict, seconds: float) -> None:
        """Count a live chat call answered 200 after ``seconds`` of the fake's own time."""
        last = str(messages[-1]) if messages else ""
        token = BENCH_TOKEN.search(" ".join(str(message.get("content")) for message in messages))
        now = time.time()
        with self._lock:
            counters = self.counters
            counters.ok += 1
            counters.tokens += answer["usage"]["total_tokens"]
            counters.ok_times.append(now)
            if last in counters.answered:
                counters.repeated_times.append(now)
            counters.answered.add(last)
            if token:
                self.timings[token.group(1)] = seconds

    def stats(self) -> dict:
        """The counters, the calls in flight now and at most, and the settings (``/_fake/stats``)."""
        with self._lock:
            counters = {
                spec.name: copy.copy(getattr(self.counters, spec.name))
                for spec in dataclasses.fields(Counters)
                if spec.name != "answered"
            }
            in_flight = {"in_flight": self.in_flight, "max_in_flight": self.peak_in_flight}
            return counters | in_flight | {"settings": {name: getattr(self, name) for name in CONFIGURABLE}}

    def take_timings(self) -> dict[str, float]:
        """The server time recorded per ``[bench:<token>]`` since the last look, cleared."""
        with self._lock:
            timings, self.timings = self.timings, {}
            return timings

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            if self._failures:
                return self._failures.popleft()
            if self.fail_every and self.counters.requests % self.fail_every == 0:
                return _Failure(self.fail_every_status, {"Retry-After": "1"}, f"fake {self.fail_every_status}")
            return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids)}"
