"""Threads for /health however slow the provider: a bound on the requests that wait for the LLM.

gunicorn's threaded workers serve every route from one pool of ``--threads`` per process.  A provider that
hangs holds each interactive request's thread until INTERACTIVE_DEADLINE; with enough of them every thread
is taken and ``/health``, which Label Studio allows one second, waits in line behind them.  So at most
``size`` requests per process may wait for the LLM at once (the server passes its thread count less a
reserve); one more is answered 503 at once instead of queueing, and the reserve serves everything else.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from shared.domain.errors import Unavailable

RESERVED_THREADS = 2  # per process, for /health, /setup, /webhook and jobs while the LLM is slow


class LLMSlots:
    def __init__(self, size: int) -> None:
        self.size = size
        self._free = threading.BoundedSemaphore(size)

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._free.acquire(blocking=False):
            raise Unavailable(
                f"all {self.size} request threads of this process that may wait for the LLM are busy (the "
                "provider is slow or not answering, or more annotators ask at once than the API's --threads "
                "and --workers allow); try again in a moment"
            )
        try:
            yield
        finally:
            self._free.release()


def slots_for(threads: int) -> int:
    """LLM slots for a server process with ``threads`` threads: all but the reserve, at least one."""
    return max(1, threads - RESERVED_THREADS)
