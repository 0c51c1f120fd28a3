"""Threads for /health however slow the provider: a bound on the requests that wait for the LLM.

gunicorn's threaded workers serve every route from one pool of ``--threads`` per process.  A provider that
hangs holds each interactive request's thread until INTERACTIVE_DEADLINE; with enough of them every thread
is taken and ``/health``, which Label Studio allows one second, waits in line behind them.  So at most
``size`` requests per process may wait for the LLM at once (the server passes its thread count less a
reserve); one more is answered 503 at once instead of queueing, and the reserve serves everything else.
Evaluations, which hold a whole project's scores while they run, are bounded the same way (429).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.domain.errors import BackendError, LimitReached, Unavailable

RESERVED_THREADS = 2  # per process, for /health, /setup, /webhook and jobs while the LLM is slow


class Slots:
    """At most ``size`` holders at once in this process; one more is refused at once with ``refusal()``."""

    def __init__(self, size: int, refusal: Callable[[], BackendError]) -> None:
        self.size = size
        self._refusal = refusal
        self._free = threading.BoundedSemaphore(size)

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._free.acquire(blocking=False):
            raise self._refusal()
        try:
            yield
        finally:
            self._free.release()


class LLMSlots(Slots):
    def __init__(self, size: int) -> None:
        super().__init__(
            size,
            lambda: Unavailable(
                f"all {size} request threads of this process that may wait for the LLM are busy (the "
                "provider is slow or not answering, or more annotators ask at once than the API's --threads "
                "and --workers allow); try again in a moment"
            ),
        )


class EvaluationSlots(Slots):
    """``POST /evaluations`` at once in this process: each holds a project's ground truth and predictions
    while it scores, so a burst of them must not take the process's memory."""

    def __init__(self, size: int) -> None:
        super().__init__(
            size,
            lambda: LimitReached(
                f"{size} evaluations are running in this API process, EVALUATION_CONCURRENCY={size}: try again "
                "when one has finished, or ask the operator to raise EVALUATION_CONCURRENCY"
            ),
        )


def slots_for(threads: int) -> int:
    """LLM slots for a server process with ``threads`` threads: all but the reserve, at least one."""
    return max(1, threads - RESERVED_THREADS)
