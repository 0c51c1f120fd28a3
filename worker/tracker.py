"""Pending chunks of a worker process, settled as their tasks land in Label Studio.

A chunk's Celery task returns once its tasks are in the LLM window (``worker/window.py``); this thread then
watches it: once every task is pushed (or failed) the chunk is finished, and when some stay open it is sent
again — as Celery's own retry would, with the next attempt number and a backoff — or, on its last attempt,
its open tasks fail.  Until then the job records this process as the chunk's holder, so if the process dies
the watchdogs send the chunk again (``worker/watchdog.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from shared.logs import log_context
from worker.chunks import ChunkRunner, PendingChunk

log = logging.getLogger(__name__)

TICK = 0.25


class ChunkTracker:
    def __init__(self, runner: ChunkRunner, send_again: Callable[[PendingChunk, float], None]) -> None:
        self.runner = runner
        self.send_again = send_again
        self._pending: list[PendingChunk] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="chunk-tracker")
        self._thread.start()

    def add(self, pending: PendingChunk) -> None:
        with self._lock:
            self._pending.append(pending)

    def _loop(self) -> None:
        while True:
            time.sleep(TICK)
            with self._lock:
                pending = list(self._pending)
            for chunk in pending:
                if self._settled(chunk):
                    with self._lock:
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
