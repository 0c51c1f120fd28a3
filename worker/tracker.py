"""Pending chunks of a worker process, settled as their tasks land in Label Studio.

A chunk's Celery task returns once its tasks are in the LLM window (``worker/window.py``); this thread then
watches it: once every task is pushed (or failed) the chunk is finished, and when some stay open it is sent
again — as Celery's own retry would, with the next attempt number and a backoff (the rule of
``shared/adapters/queue.py``) — or, on its last attempt, its open tasks fail.  Until then the job records this
process as the chunk's holder, so if the process dies the watchdogs send the chunk again (``worker/watchdog.py``).

A process that stops (``worker/process.py``) hands its chunks back: those with tasks the window did not start are
sent again at once, and at the end of the drain so are those it could not settle in time, with the same attempt
(nothing failed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shared.logs import log_context
from worker.chunks import ChunkRunner, PendingChunk
from worker.periodic import Periodic

log = logging.getLogger(__name__)

TICK = 0.25

# send_again(chunk, retry_in): the chunk's next run, after ``retry_in`` as its next attempt, or (None) handed back at
# once with the same attempt (``shared.adapters.queue.send_chunk_again``)
SendAgain = Callable[[PendingChunk, float | None], None]


class ChunkTracker:
    def __init__(self, runner: ChunkRunner, send_again: SendAgain) -> None:
        self.runner = runner
        self.send_again = send_again
        self._pending: list[PendingChunk] = []
        self._lock = threading.Lock()
        self._round = threading.Lock()  # a settling round and a hand-back never act on a chunk at once
        self._loop = Periodic(TICK, self._tick, "chunk-tracker")

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float | None = None) -> None:
        self._loop.stop(timeout)

    def add(self, pending: PendingChunk) -> None:
        with self._lock:
            self._pending.append(pending)

    @property
    def pending(self) -> int:
        """Chunks this process has not settled yet."""
        with self._lock:
            return len(self._pending)

    def _tick(self) -> None:
        with self._round:
            with self._lock:
                pending = list(self._pending)
            for chunk in pending:
                if self._settled(chunk):
                    self._forget(chunk)

    def _forget(self, chunk: PendingChunk) -> None:
        with self._lock:
            if chunk in self._pending:
                self._pending.remove(chunk)

    def _settled(self, chunk: PendingChunk) -> bool:
        with log_context(job_id=chunk.job_id, chunk=chunk.index):
            try:
                outcome = self.runner.settle(chunk)
                if outcome is None:
                    return False
                if outcome.retry_in is not None:
                    self.send_again(chunk, outcome.retry_in)
                return True
            except Exception:  # Redis away: the next tick tries again (and the watchdogs, should this process die)
                log.warning("job %s chunk %s: could not settle", chunk.job_id, chunk.index, exc_info=True)
                return False

    def hand_back_unstarted(self) -> int:
        """The window was closed: every chunk with tasks it did not start is sent again now (their claims released,
        the same attempt: it is no failure), so another worker takes them at once; this process still records what
        its calls in flight answer, and the chunk's new run pushes it.  Returns how many chunks were sent."""
        with self._round:
            with self._lock:
                pending = list(self._pending)
            sent = 0
            for chunk in pending:
                with log_context(job_id=chunk.job_id, chunk=chunk.index):
                    if self.runner.hand_back(chunk):
                        self.send_again(chunk, None)
                        sent += 1
            return sent

    def hand_back_the_rest(self) -> int:
        """The drain's time is up: every chunk not settled yet is sent again now (its predictions wait in the
        ledger's outbox for the next pusher; its claims are released).  Returns how many were sent."""
        self.stop()
        with self._lock:
            pending, self._pending = list(self._pending), []
        sent = 0
        for chunk in pending:
            with log_context(job_id=chunk.job_id, chunk=chunk.index):
                try:
                    if self.runner.hand_back(chunk, everything=True):
                        self.send_again(chunk, None)
                        sent += 1
                except Exception:  # Redis away: the holder record stays; the watchdogs send it once this worker is gone
                    log.warning("job %s chunk %s: could not hand it back", chunk.job_id, chunk.index, exc_info=True)
        return sent
