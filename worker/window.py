"""The LLM window of a worker process: ``LLM_CONCURRENCY`` calls in flight, fed across chunk boundaries.

A chunk hands its tasks to the window and its Celery task returns as soon as they are all in flight
(``wait_for_room``), so the next chunk's tasks queue behind them while they run: a slow call holds only its
own task, and the window stays full for as long as the process has tasks.  One FIFO queue for the whole
process, so chunks are served in the order they came.

The queue is the window's own (not a thread pool's), so that a worker told to stop can hand back at once what
it has not started (``close``: the futures of queued work are cancelled, no thread needed) while what is in
flight runs to its end (``wait_idle``).
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

R = TypeVar("R")

# not a setting: only how long an idle thread is kept (LLM_CONCURRENCY bounds the window)
IDLE_EXIT = 30.0  # seconds a thread of the window waits for work before it ends (the window grows again on demand)


class LLMWindow:
    def __init__(self, size: int) -> None:
        self.size = size
        self._changed = threading.Condition()
        self._queue: deque[tuple[Future[Any], Callable[[], Any]]] = deque()  # handed over, not started yet
        self._running = 0
        self._threads = 0
        self._idle = 0
        self._closed = False

    def submit(self, work: Callable[[], R]) -> Future[R]:
        """Run ``work`` when a place is free (in a copy of the caller's context, for its log fields); on a closed
        window the future comes back cancelled."""
        future: Future[R] = Future()
        context = contextvars.copy_context()
        with self._changed:
            if self._closed:
                future.cancel()
                return future
            self._queue.append((future, lambda: context.run(work)))
            if len(self._queue) > self._idle and self._threads < self.size:  # no idle thread left for it
                self._threads += 1
                threading.Thread(target=self._serve, daemon=True, name="llm-window").start()
            self._changed.notify_all()
        return future

    def _serve(self) -> None:
        while True:
            with self._changed:
                self._idle += 1
                self._changed.wait_for(lambda: self._queue or self._closed, timeout=IDLE_EXIT)
                self._idle -= 1
                if not self._queue:  # closed, or idle for long: this thread ends
                    self._threads -= 1
                    return
                future, work = self._queue.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                self._running += 1
                self._changed.notify_all()
            try:
                future.set_result(work())
            except BaseException as exc:  # the caller sees it on the future, as with a thread pool
                future.set_exception(exc)
            finally:
                with self._changed:
                    self._running -= 1
                    self._changed.notify_all()

    @property
    def in_flight(self) -> int:
        """Work started and not finished: the LLM calls this process has open."""
        return self._running

    def wait_for_room(self) -> None:
        """Wait until every task handed over is in flight (nothing queued): time to take the next chunk."""
        with self._changed:
            self._changed.wait_for(lambda: not self._queue)

    def close(self) -> int:
        """Start nothing more: the work queued and not started is handed back (its futures cancelled, so its
        chunk can send it elsewhere); what is in flight goes on.  Returns how many were handed back."""
        with self._changed:
            self._closed = True
            queued, self._queue = self._queue, deque()
            self._changed.notify_all()
        for future, _work in queued:
            future.cancel()
        return len(queued)

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until nothing is in flight (after ``close``: the calls that were open have answered); False when
        ``timeout`` seconds passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._running == 0 and not self._queue, timeout=timeout)
