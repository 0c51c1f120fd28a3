"""One worker process's state and life cycle: built after the fork, its loops started when the process starts and
stopped when it ends, with a drain in between so a worker told to leave loses no answer.

What Celery 5.7 does on SIGTERM, read in its source and billiard 4.3's:

- SIGTERM to the main process is a warm shutdown (``celery/apps/worker.py``, ``_shutdown_handler``): the main
  process sends ``worker_shutting_down`` (``how="Warm"``) and sets ``state.should_stop``; the consumer stops taking
  messages (those taken and not started go back to the queue when its channel closes) and the prefork pool's
  ``on_stop`` (``celery/concurrency/prefork.py``) closes the pool and joins it: billiard's ``Pool.join`` waits for
  every child, with no timeout.  A further SIGTERM only says so again; SIGQUIT (or SIGINT twice) is the cold
  shutdown, which cancels the tasks and terminates the children.
- The children are not signalled: ``process_initializer`` reset their SIGTERM to the default action and ignores
  SIGINT, and they die with the main process (``PR_SET_PDEATHSIG`` SIGKILL).  A child gets the pool's sentinel
  once its current task returned, leaves its loop and sends ``worker_process_shutdown`` from
  ``process_destructor`` (billiard's ``Worker._do_exit``, in the child) just before it exits.
- A chunk's Celery task returns once its tasks are in the LLM window (``worker/window.py``), so the warm shutdown
  waited for nothing more: the calls in flight died with the children and were asked again elsewhere.

So here: the main process, on a warm ``worker_shutting_down``, raises a flag in memory it shares with its pool
processes (an anonymous shared mapping made before the fork: no signal, which a process's many threads would take
in the place of the one blocked waiting, and no file), and each pool process, which looks at it every
``DRAIN_WATCH`` s, starts ``hand_back`` at once: its window starts nothing more, and every chunk with tasks not
started is sent again with their claims released, for the other workers to take now.  ``stop``, at
``worker_process_shutdown`` (the pool's join), waits up to ``WORKER_DRAIN_SECONDS`` from then for the calls in
flight to answer — each answer is kept in the ledger's outbox as it comes — and for their chunks to be pushed and
settled; what is left then is handed back too (its predictions wait in the outbox for the next pusher), and the
loops stop.  The main process's join waits meanwhile, and its watchdog beats until the very end
(``worker/app.py``).
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
import time
import uuid

from celery import Celery

from shared.adapters.jobs import Jobs
from shared.adapters.queue import holder_name, send_chunk_again, worker_identity
from shared.batch_jobs import BatchJobs
from shared.domain.config import Settings
from shared.services import Services
from worker.chunks import ChunkRunner, PendingChunk
from worker.periodic import Periodic
from worker.pusher import Pusher
from worker.tracker import ChunkTracker
from worker.window import LLMWindow

log = logging.getLogger(__name__)

# Not settings: cadences of this process's own threads, which bound nothing an operator sees.
DRAIN_WATCH = 0.1  # seconds between two looks of a pool process at the drain flag
LOAD_EVERY = 1.0  # seconds between two reports of the calls in flight (/metrics)
LOAD_HOLDS = 5.0  # a report older than this is a process gone


class PerProcess:
    """Per-process state, built after the fork: Redis connections and threads do not survive one."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self.settings = settings
        self.app = app
        self._pid: int | None = None
        self.nonce = uuid.uuid4().hex[:12]  # made in the main process: its prefork children share it
        self.node = ""  # the Celery node name, known once the process starts
        self._drain_started: float | None = None
        self._drain_lock = threading.Lock()
        self._started_in: int | None = None  # the process whose loops run
        self._leaving = mmap.mmap(-1, 1)  # shared with the pool processes forked after this: 1 once the worker leaves

    def identity(self, node: str) -> str:
        """This worker's name in the records recovery reads (``worker_identity``)."""
        return worker_identity(node, self.nonce)

    @property
    def holder(self) -> str:
        """This process, as the holder of the chunks it works on."""
        return holder_name(self.identity(self.node), os.getpid())

    def _build(self) -> None:
        services = Services.build(self.settings)
        self._services = services
        self._jobs = services.jobs
        self._window = LLMWindow(self.settings.llm_concurrency)
        self._pusher = Pusher(services.predictor, metrics=services.metrics)
        self._runner = ChunkRunner(
            self.settings, services.projects, services.predictor, services.jobs, self._window, self._pusher
        )
        self._tracker = ChunkTracker(self._runner, self._send_again)
        self._load = Periodic(LOAD_EVERY, self._report_load, "load-report")
        self._watch = Periodic(DRAIN_WATCH, self._look_at_the_flag, "drain-watch")
        self._batch_jobs = services.batch_jobs
        self._pid = os.getpid()

    def _send_again(self, chunk: PendingChunk, retry_in: float | None) -> None:
        """Celery's retry, for a chunk whose task returned already (``send_chunk_again``: the one rule)."""
        send_chunk_again(self.app, chunk.job_id, chunk.index, chunk.attempt, retry_in)

    def _report_load(self) -> None:
        self._jobs.report_in_flight(self.holder, self._window.in_flight, LOAD_HOLDS)

    # --- the life cycle ------------------------------------------------------------------------------
    def start(self, node: str) -> None:
        """A pool process starts (``worker_process_init``; the main process itself with a pool that does not fork,
        at ``worker_ready``): build its state and start its loops."""
        self.node = node
        self._here()
        self._started_in = os.getpid()
        self._pusher.start()
        self._tracker.start()
        self._load.start()
        self._watch.start()

    def leave(self) -> None:
        """In the main process (``worker_shutting_down``, warm): tell the pool processes to drain."""
        self._leaving[0] = 1

    def _look_at_the_flag(self) -> None:
        if self._leaving[0] and self._drain_started is None:
            self.hand_back()

    def hand_back(self) -> None:
        """Start nothing more, and let the other workers have the tasks not started, now."""
        with self._drain_lock:
            if self._drain_started is None:
                self._drain_started = time.monotonic()
            not_started = self._window.close()
            if not_started:
                chunks = self._tracker.hand_back_unstarted()
                log.warning("stopping: %d tasks not started handed back (%d chunks sent again)", not_started, chunks)

    def stop(self) -> None:
        """The pool process ends (``worker_process_shutdown``): drain within ``WORKER_DRAIN_SECONDS`` of the word to
        leave, then stop every loop."""
        if self._started_in != os.getpid():
            return  # no loop runs in this process (a prefork worker's main process)
        self.hand_back()
        assert self._drain_started is not None
        deadline = self._drain_started + self.settings.worker_drain_seconds
        in_flight = self._window.in_flight
        answered = self._window.wait_idle(max(0.0, deadline - time.monotonic()))
        while self._tracker.pending and time.monotonic() < deadline:
            time.sleep(0.1)
        left = self._tracker.hand_back_the_rest()
        self._pusher.stop(max(0.0, deadline - time.monotonic()))
        self._watch.stop()
        self._load.stop()
        self._jobs.forget_in_flight(self.holder)
        self._services.metrics.close()
        log.log(
            logging.INFO if answered and not left else logging.WARNING,
            "stopped after %.1f s: %d calls were in flight%s; %d chunks handed back unsettled",
            time.monotonic() - self._drain_started,
            in_flight,
            "" if answered else f", {self._window.in_flight} of them unanswered at WORKER_DRAIN_SECONDS",
            left,
        )

    # --- what the tasks use --------------------------------------------------------------------------
    def _here(self) -> PerProcess:
        """This state as built in the current process (again after a fork)."""
        if self._pid != os.getpid():
            self._build()
        return self

    @property
    def jobs(self) -> Jobs:
        return self._here()._jobs

    @property
    def runner(self) -> ChunkRunner:
        return self._here()._runner

    @property
    def batch_jobs(self) -> BatchJobs:
        return self._here()._batch_jobs

    @property
    def tracker(self) -> ChunkTracker:
        return self._here()._tracker
