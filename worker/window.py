"""The LLM window of a worker process: ``LLM_CONCURRENCY`` calls in flight, fed across chunk boundaries.

A chunk hands its tasks to the window and its Celery task returns as soon as they are all in flight
(``wait_for_room``), so the next chunk's tasks queue behind them while they run: a slow call holds only its
own task, and the window stays full for as long as the process has tasks.  One FIFO queue for the whole
process, so chunks are served in the order they came.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

R = TypeVar("R")


class LLMWindow:
    def __init__(self, size: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="llm-window")
        self._changed = threading.Condition()
        self._queued = 0  # handed over, not started yet

    def submit(self, work: Callable[[], R]) -> Future[R]:
        """Run ``work`` when a place is free (in a copy of the caller's context, for its log fields)."""
        context = contextvars.copy_context()
        with self._changed:
            self._queued += 1

        def run() -> R:
            with self._changed:
                self._queued -= 1
                self._changed.notify_all()
            return context.run(work)

        return self._pool.submit(run)

    def wait_for_room(self) -> None:
        """Wait until every task handed over is in flight (nothing queued): time to take the next chunk."""
        with self._changed:
            self._changed.wait_for(lambda: self._queued == 0)
