"""The project's pusher: predictions go to Label Studio in few, large ``import/predictions`` calls.

Label Studio does work proportional to the project on every import call (about 0.3 s on an empty project,
5 s once it holds 10,000 predictions, whatever the batch size), so the number of calls, not the number of
predictions, decides how a large job scales.  Chunks therefore do not push: they keep each prediction in
the ledger and put the task in the ledger's outbox (Redis).  Every worker process runs a push loop; for each
(project, model version) one of them holds the push lock and flushes the outbox — everything waiting, from
every process, in one call — when predictions have waited ``CALL_SHARE`` times the last call's duration
(between ``MIN_INTERVAL`` and ``MAX_INTERVAL``), when no new ones came for ``SETTLE_SECONDS`` (the end of a
job), or when ``MAX_BATCH`` are waiting.  The LLM window runs meanwhile; chunks wait for their tasks to be
pushed before they finish (``worker/chunks.py``), so recovery is unchanged.

Exactly-once bookkeeping is the ledger's: ``take_for_push`` marks what a flush sends (a task handed to Label
Studio as the answer to an opened task is left out), ``end_push`` records what landed; a push lost with a
crashed pusher is checked against Label Studio by the task's chunk after ``HANDOVER_GRACE``.  A batch that
Label Studio refuses is bisected until the refused predictions are found; each is dropped with the reason,
which its chunk reports as the task's failure.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from shared.adapters.jobs import Ledger
from shared.adapters.label_studio import LabelStudioGateway
from shared.domain.errors import LabelStudioError
from shared.predictor import Predictor
from shared.projects import PredictionContext

log = logging.getLogger(__name__)

MAX_BATCH = 5000  # predictions per call: about 1.5 MB of JSON; Label Studio takes 250 MB (DATA_UPLOAD_MAX_MEMORY_SIZE)
BACKLOG_LIMIT = 10000  # chunks stop feeding the LLM window while more than this many wait to be pushed
# Wait as long as the last call took: batches grow with the call time, Label Studio idles half the time.
CALL_SHARE = 1.0
MIN_INTERVAL = 1.0
MAX_INTERVAL = 8.0  # predictions keep appearing for annotators at least this often
SETTLE_SECONDS = 0.5  # no new prediction for this long: the job is ending, push what is there
LOCK_SECONDS = 30.0  # a pusher that died leaves its projects to another after this long
IDLE_FORGET = 60.0  # a project with nothing waiting for this long is dropped from the loop (and its lock released)
TICK = 0.2


@dataclass
class _Outbox:
    """What this process's loop knows of one (project, version)'s outbox."""

    ctx: PredictionContext
    ledger: Ledger
    last_call: float = 0.0
    waiting_since: float | None = None
    last_size: int = 0
    grew_at: float = field(default_factory=time.monotonic)
    active_at: float = field(default_factory=time.monotonic)


class Pusher:
    def __init__(self, predictor: Predictor, backlog_limit: int = BACKLOG_LIMIT) -> None:
        self.predictor = predictor
        self.backlog_limit = backlog_limit
        self.owner = uuid.uuid4().hex
        self._outboxes: dict[tuple[str | None, str], _Outbox] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- the loop --------------------------------------------------------------------------------
    def watch(self, ctx: PredictionContext, ledger: Ledger) -> None:
        """This process has predictions for this ledger: keep its outbox flushed."""
        with self._lock:
            box = self._outboxes.get((ledger.project, ledger.version))
            if box is None:
                self._outboxes[(ledger.project, ledger.version)] = _Outbox(ctx, ledger)
            else:
                box.ctx, box.active_at = ctx, time.monotonic()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="pusher")
            self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(TICK)
            with self._lock:
                boxes = list(self._outboxes.values())
            for box in boxes:
                try:
                    self._tend(box)
                except Exception:  # Redis or Label Studio away: the next tick tries again
                    log.warning("push loop for project %s failed", box.ledger.project, exc_info=True)

    def _tend(self, box: _Outbox) -> None:
        now = time.monotonic()
        size = box.ledger.outbox_size()
        if size == 0:
            box.waiting_since = None
            if now - box.active_at > IDLE_FORGET:
                with self._lock:
                    self._outboxes.pop((box.ledger.project, box.ledger.version), None)
                box.ledger.release_push_lock(self.owner)
            return
        box.active_at = now
        if size != box.last_size:
            box.last_size, box.grew_at = size, now
        if not box.ledger.hold_push_lock(self.owner, LOCK_SECONDS):
            box.waiting_since = None  # another process pushes this project
            return
        if box.waiting_since is None:
            box.waiting_since = now
        interval = min(MAX_INTERVAL, max(MIN_INTERVAL, CALL_SHARE * box.last_call))
        if now - box.waiting_since >= interval or now - box.grew_at >= SETTLE_SECONDS or size >= MAX_BATCH:
            self._flush(box)
            box.waiting_since = None
            # What came during the call came after ``now`` at the latest: if nothing more comes by the next tick,
            # the job is ending and that is pushed at once, not SETTLE_SECONDS after this loop next saw it.
            box.last_size, box.grew_at = box.ledger.outbox_size(), now

    # --- one flush -------------------------------------------------------------------------------
    def flush(self, ctx: PredictionContext, ledger: Ledger) -> int:
        """Push everything in the outbox now, if no other process holds the push lock; returns how many landed."""
        if not ledger.hold_push_lock(self.owner, LOCK_SECONDS):
            return 0
        try:
            box = _Outbox(ctx, ledger)
            pushed = 0
            while ledger.outbox_size():
                pushed += self._flush(box)
            return pushed
        finally:
            ledger.release_push_lock(self.owner)

    def _flush(self, box: _Outbox) -> int:
        """One ``import/predictions`` call with what waits (up to MAX_BATCH); returns how many landed."""
        ledger, ctx = box.ledger, box.ctx
        marked = ledger.take_for_push(MAX_BATCH)
        results = ledger.to_push(marked)
        lost = [task_id for task_id in marked if task_id not in results]
        if lost:  # refused and forgotten meanwhile: nothing to send
            ledger.unmark_push(lost)
        if not results:
            return 0
        gateway = self.predictor.gateway(ctx)
        if gateway is None or ctx.project is None:  # access lost mid-job: their chunks run again and say why
            ledger.unmark_push(list(results))
            return 0
        predictions = [{"task": int(task_id), **prediction} for task_id, prediction in results.items()]
        started = time.monotonic()
        try:
            landed = self._send(gateway, int(ctx.project), ledger, predictions)
        except LabelStudioError as exc:
            # The marks stay: the tasks' chunks check Label Studio after HANDOVER_GRACE before pushing again.
            log.warning("push of %d predictions to project %s failed: %s", len(predictions), ctx.project, exc)
            return 0
        box.last_call = time.monotonic() - started
        log.info("pushed %d predictions to project %s in %.2f s", landed, ctx.project, box.last_call)
        return landed

    def _send(self, gateway: LabelStudioGateway, project: int, ledger: Ledger, predictions: list[dict]) -> int:
        """Push a batch; one Label Studio refuses is split in halves until the refused predictions are found."""
        try:
            gateway.push_predictions(project, predictions)
        except LabelStudioError as exc:
            if exc.retryable:
                raise
            if len(predictions) == 1:
                log.warning("Label Studio refused the prediction for task %s: %s", predictions[0]["task"], exc)
                ledger.refuse(predictions[0]["task"], f"Label Studio refused the prediction: {exc}")
                return 0
            half = len(predictions) // 2
            return self._send(gateway, project, ledger, predictions[:half]) + self._send(
                gateway, project, ledger, predictions[half:]
            )
        ledger.end_push([prediction["task"] for prediction in predictions])
        return len(predictions)

    def backlog_full(self, ledger: Ledger) -> bool:
        """Whether so many predictions wait for Label Studio that the window should pause."""
        return ledger.outbox_size() > self.backlog_limit
