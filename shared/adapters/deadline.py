"""One overall deadline for everything a request does on the network, however deep the call.

An annotator's request waits on the rate limit, the LLM (connect, each read, retries with backoff) and maybe
Label Studio (an image), through the ``openai`` client and the Label Studio SDK, neither of which has a
timeout for a whole call: a provider trickling a byte a second is never cut by a read timeout. So the
deadline is set once around the request (``deadline_after``) and read where time is spent: every socket
operation of our HTTP transports (``shared.adapters.netguard``) waits at most until it, and sleeps between
retries or for the rate limit stop short of it. A context variable carries it, so that no signature between
the route and the socket has to, and work outside a request (batch chunks) has none.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shared.domain.errors import DeadlineExceeded, TaskError


@dataclass(frozen=True)
class _Deadline:
    at: float  # time.monotonic()
    seconds: float

    def exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"no answer within {self.seconds:g} s (INTERACTIVE_DEADLINE), so the backend stopped waiting: the "
            "LLM provider is slow or not answering; try again later"
        )


_current: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("deadline", default=None)


@contextmanager
def deadline_after(seconds: float, since: float | None = None) -> Iterator[None]:
    """Everything inside must finish within ``seconds`` of ``since`` (a ``time.monotonic()``; default now)."""
    start = time.monotonic() if since is None else since
    token = _current.set(_Deadline(start + seconds, seconds))
    try:
        yield
    finally:
        _current.reset(token)


def overdue(error: TaskError) -> TaskError:
    """The error to report for a task that failed with ``error``: DeadlineExceeded if the deadline has passed
    (a read cut short, a retry not made), since that is why it failed; else ``error`` itself."""
    deadline = _current.get()
    if deadline is None or isinstance(error, DeadlineExceeded) or time.monotonic() < deadline.at:
        return error
    exceeded = deadline.exceeded()
    exceeded.__cause__ = error
    return exceeded


def remaining() -> float | None:
    """Seconds left before the current deadline (≤ 0 once passed), or None outside any."""
    deadline = _current.get()
    return None if deadline is None else deadline.at - time.monotonic()


def check(wait: float = 0.0) -> None:
    """Raise DeadlineExceeded if the deadline has passed, or would pass during a wait of ``wait`` seconds."""
    deadline = _current.get()
    if deadline is not None and time.monotonic() + wait >= deadline.at:
        raise deadline.exceeded()


def sleep(seconds: float) -> None:
    """``time.sleep``, unless the deadline would pass first: then DeadlineExceeded at once, not after waiting."""
    check(seconds)
    time.sleep(seconds)
