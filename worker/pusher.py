"""The project's pusher: predictions go to Label Studio in few, large ``import/predictions`` calls, each once.

Label Studio does work proportional to the whole project on every import call, whatever the batch size (figures in
docs/operating.md), so the number of calls, not the number of predictions, decides how a large job scales.  Chunks
therefore do not push: they keep each prediction in the ledger and put the task in the ledger's outbox (Redis).
Every worker process runs a push loop for each (project, model version) it has predictions of (so a slow call for
one project never holds back another's); for each, one process holds the push lock and flushes the outbox —
everything waiting, from every process, in one call — when predictions have waited ``CALL_SHARE`` times the last
call's duration (between ``MIN_INTERVAL`` and ``PUSH_MAX_INTERVAL``), when no new ones came for ``SETTLE_SECONDS``
(the end of a job), or when a call's worth are waiting.  The LLM window runs meanwhile; chunks wait for their tasks
to be pushed before they finish (``worker/chunks.py``), so recovery is unchanged.

A call's size and read timeout come from what the project's last calls cost (``shared.domain.estimation.push_cost``), so
calls do not time out as the project grows.  An import is not idempotent (Label Studio takes no client-supplied
id): a call that times out, loses its connection or gets a 5xx may have been stored, and sending it again would
store it twice.  So each call is recorded in the ledger before it is sent (``record_push``); while its outcome is
unknown the push lock stays held (renewed while the call runs and while it waits) and nothing else is sent for
the project; then which of its tasks hold the prediction is read back from Label Studio (``reconcile``) and only
the others go back to the outbox.  A pusher killed mid-call leaves the record: whoever takes the lock after it
lapses reads it back first.  On the happy path this costs no read.

A batch that Label Studio refuses (4xx) is bisected until the refused predictions are found; each is dropped with
the reason, which its chunk reports as the task's failure.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.label_studio import LabelStudioGateway
from shared.adapters.ledger import Ledger
from shared.adapters.metrics import Metrics
from shared.domain.errors import LabelStudioError, PushOutcomeUnknown
from shared.domain.estimation.push_cost import PushCost
from shared.predictor import Predictor
from shared.projects import PredictionContext
from worker.periodic import Periodic

log = logging.getLogger(__name__)

# The operator's bounds (call sizes, the backlog, the longest wait, the push lock) are settings (PUSH_*); what
# follows tunes the loop itself (not settings: no deployment needs other values).
# Wait as long as the last call took: batches grow with the call time, Label Studio idles half the time.
CALL_SHARE = 1.0
MIN_INTERVAL = 1.0  # not a setting: below a second calls only multiply Label Studio's per-call work
SETTLE_SECONDS = 0.5  # no new prediction for this long: the job is ending, push what is there
IDLE_FORGET = 60.0  # a project with nothing waiting for this long is dropped from the loop (and its lock released)
UNKNOWN_SETTLE = 5.0  # after a call with no answer, Label Studio gets at least this long to finish it before the read
RECONCILE_RETRY = 10.0  # a read-back that failed (Label Studio away) is tried again this much later
TICK = 0.2  # how often the loop looks at its outbox: a cadence that bounds nothing an operator sees


@dataclass
class _Outbox:
    """What this process's loop knows of one (project, version)'s outbox."""

    ctx: PredictionContext
    ledger: Ledger
    cost: PushCost
    waiting_since: float | None = None
    last_size: int = 0
    grew_at: float = field(default_factory=time.monotonic)
    active_at: float = field(default_factory=time.monotonic)
    loop: Periodic | None = None  # its push loop in this process (``Pusher.start``)


@contextmanager
def _lock_kept(ledger: Ledger, owner: str, lock_seconds: float) -> Iterator[None]:
    """Renews the push lock while a call runs (every third of its time, a failed renewal tried again at the next),
    so the lock outlives any call, however long Label Studio takes."""
    keeper = Periodic(lock_seconds / 3, lambda: ledger.hold_push_lock(owner, lock_seconds), "push-lock").start()
    try:
        yield
    finally:
        keeper.stop()


def _key(ledger: Ledger) -> tuple[str, str]:
    return ledger.project, ledger.version


class _Unknown(Exception):
    """A call's outcome is unknown: it is recorded in the ledger, to be read back."""


class Pusher:
    def __init__(self, predictor: Predictor, metrics: Metrics | None = None) -> None:
        """Its bounds are the settings' (``predictor.settings``: ``PUSH_*``)."""
        self.predictor = predictor
        settings = predictor.settings
        self.backlog_limit = settings.push_backlog_limit
        self.lock_seconds = settings.push_lock_seconds
        self.max_interval = settings.push_max_interval
        self.metrics = metrics
        self.owner = uuid.uuid4().hex
        self._outboxes: dict[tuple[str, str], _Outbox] = {}
        self._lock = threading.Lock()
        # one call or read-back per (project, version) at a time in this process (they share the owner)
        self._busy: dict[tuple[str, str], threading.Lock] = {}
        self._started = self._stopped = False

    def _new_outbox(self, ctx: PredictionContext, ledger: Ledger) -> _Outbox:
        settings = self.predictor.settings
        cost = PushCost(
            settings.push_target_seconds,
            settings.push_min_predictions,
            settings.push_max_predictions,
            settings.push_timeout_min,
            settings.push_timeout_max,
        )
        return _Outbox(ctx, ledger, cost)

    # --- the loop --------------------------------------------------------------------------------
    def watch(self, ctx: PredictionContext, ledger: Ledger) -> None:
        """This process has predictions for this ledger: keep its outbox flushed."""
        with self._lock:
            box = self._outboxes.get(_key(ledger))
            if box is None:
                box = self._outboxes[_key(ledger)] = self._new_outbox(ctx, ledger)
                if self._started:
                    self._spawn(box)
            else:
                box.ctx, box.active_at = ctx, time.monotonic()

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                for box in self._outboxes.values():
                    self._spawn(box)

    def _spawn(self, box: _Outbox) -> None:
        """The push loop of one (project, version), until it is forgotten (idle) or the pusher stops: an import call
        into a large project (tens of seconds) delays no other project's predictions.  Called holding ``_lock``."""
        if not self._stopped:
            box.loop = Periodic(TICK, lambda: self._round(box), f"pusher-{box.ledger.project}").start()

    def _round(self, box: _Outbox) -> None:
        with self._lock:
            if self._outboxes.get(_key(box.ledger)) is not box:  # forgotten: the next ``watch`` starts a new loop
                assert box.loop is not None
                box.loop.stop()
                return
        self.tend(box.ledger)

    def tend(self, ledger: Ledger) -> None:
        """One round of the push loop of a ledger this process watches (its thread's work every ``TICK``): read back
        a call whose outcome is unknown once its time has come, else push what waits once it is due; nothing when the
        ledger is not watched (any more)."""
        with self._lock:
            box = self._outboxes.get(_key(ledger))
        if box is not None:
            with self._busy_for(ledger):
                self._tend(box)

    def _busy_for(self, ledger: Ledger) -> threading.Lock:
        with self._lock:
            return self._busy.setdefault(_key(ledger), threading.Lock())

    def stop(self, timeout: float | None = None) -> None:
        """Push no more: a call under way ends first (up to ``timeout`` s in all; one left unknown is read back by the
        next pusher), and the push locks this process holds without a call in flight are released at once, so another
        process's pusher takes the project over without waiting for them to lapse."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._stopped = True
            boxes = list(self._outboxes.values())
        for box in boxes:
            if box.loop is not None:
                box.loop.stop(None if deadline is None else max(0.0, deadline - time.monotonic()))
        for box in boxes:
            busy = self._busy_for(box.ledger)
            if not busy.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
                continue  # a call still open: its lock lapses, and the next pusher reads the call back
            try:
                if box.ledger.push_in_flight() is None:
                    box.ledger.release_push_lock(self.owner)
            finally:
                busy.release()

    def _tend(self, box: _Outbox) -> None:
        now = time.monotonic()
        if box.ledger.push_in_flight() is not None:  # an outcome to read back before anything is sent
            box.active_at = now
            if box.ledger.hold_push_lock(self.owner, self.lock_seconds):
                self._reconcile(box)
            return
        size = box.ledger.outbox_size()
        if size == 0:
            box.waiting_since = None
            if now - box.active_at > IDLE_FORGET:
                with self._lock:
                    self._outboxes.pop(_key(box.ledger), None)
                box.ledger.release_push_lock(self.owner)
            return
        box.active_at = now
        if size != box.last_size:
            box.last_size, box.grew_at = size, now
        if not box.ledger.hold_push_lock(self.owner, self.lock_seconds):
            box.waiting_since = None  # another process pushes this project
            return
        if box.waiting_since is None:
            box.waiting_since = now
        interval = min(self.max_interval, max(MIN_INTERVAL, CALL_SHARE * box.cost.last_seconds))
        full = size >= box.cost.batch_size()
        if now - box.waiting_since >= interval or now - box.grew_at >= SETTLE_SECONDS or full:
            self._flush(box)
            box.waiting_since = None
            # What came during the call came after ``now`` at the latest: if nothing more comes by the next tick,
            # the job is ending and that is pushed at once, not SETTLE_SECONDS after this loop next saw it.
            box.last_size, box.grew_at = box.ledger.outbox_size(), now

    # --- one call ---------------------------------------------------------------------------------
    def _flush(self, box: _Outbox) -> int:
        """One ``import/predictions`` call with what waits (up to a call's worth); returns how many landed."""
        ledger, ctx = box.ledger, box.ctx
        results = ledger.take_batch(box.cost.batch_size())
        if not results:
            return 0
        gateway = self.predictor.gateway(ctx)
        if gateway is None or ctx.project is None:  # access lost mid-job: their chunks run again and say why
            ledger.put_back(list(results), to_outbox=False)
            return 0
        predictions = [{"task": int(task_id), **prediction} for task_id, prediction in results.items()]
        tasks = [int(task_id) for task_id in results]
        try:
            return self._send(box, gateway, int(ctx.project), predictions)
        except _Unknown:  # the call's tasks wait for the read-back; those of a bisection not sent yet go back
            call = ledger.push_in_flight()
            in_flight = set(call.tasks) if call is not None else set()
            ledger.put_back([task for task in tasks if str(task) not in in_flight])
            return 0
        except LabelStudioError as exc:  # nothing was stored (no connection, 408/409/429): the chunks push again
            log.warning("push of %d predictions to project %s failed: %s", len(predictions), ctx.project, exc)
            ledger.put_back(tasks)
            return 0

    def _send(self, box: _Outbox, gateway: LabelStudioGateway, project: int, predictions: list[dict[str, Any]]) -> int:
        """Push a batch; one Label Studio refuses is split in halves until the refused predictions are found."""
        ledger, tasks = box.ledger, [prediction["task"] for prediction in predictions]
        timeout = box.cost.read_timeout(len(predictions))
        reconcile_at = time.time() + timeout + max(UNKNOWN_SETTLE, timeout)  # should this pusher die mid-call
        ledger.record_push(self.owner, tasks, reconcile_at, answer_by=time.time() + timeout)
        started = time.monotonic()
        try:
            with _lock_kept(ledger, self.owner, self.lock_seconds):
                gateway.push_predictions(project, predictions, timeout=timeout)
        except PushOutcomeUnknown as exc:
            seconds = time.monotonic() - started
            self._observe("unknown", seconds)
            if seconds >= timeout:  # it costs at least this: the next call waits longer (a fresh worker, a big project)
                box.cost.observe(len(predictions), seconds)
            settle = 0.0 if exc.answered else max(UNKNOWN_SETTLE, timeout)
            ledger.reconcile_later(time.time() + settle)
            log.warning(
                "push of %d predictions to project %s: outcome unknown after %.1f s (%s); reading it back in %.0f s",
                len(predictions),
                project,
                seconds,
                exc,
                settle,
            )
            raise _Unknown() from None
        except LabelStudioError as exc:
            ledger.settle_push([], [])  # refused or never sent: nothing of it is in Label Studio
            self._observe("refused" if not exc.retryable else "unreached", time.monotonic() - started)
            if exc.retryable:
                raise
            if len(predictions) == 1:
                log.warning("Label Studio refused the prediction for task %s: %s", predictions[0]["task"], exc)
                ledger.refuse(predictions[0]["task"], f"Label Studio refused the prediction: {exc}")
                return 0
            half = len(predictions) // 2
            landed = self._send(box, gateway, project, predictions[:half])
            return landed + self._send(box, gateway, project, predictions[half:])
        seconds = time.monotonic() - started
        ledger.settle_push(tasks, [])
        box.cost.observe(len(predictions), seconds)
        self._observe("ok", seconds)
        log.info(
            "pushed %d predictions to project %s in %.2f s (read timeout %.0f s; next call up to %d)",
            len(predictions),
            project,
            seconds,
            timeout,
            box.cost.batch_size(),
        )
        return len(predictions)

    def reconcile_due(self, ctx: PredictionContext, ledger: Ledger) -> bool:
        """Read back a call whose outcome is unknown, if its time has come and no other process holds the push
        lock; True when one was read back (a chunk finding its tasks in it asks, so as not to wait a tick).  Left
        to the loop while this process is pushing."""
        busy = self._busy_for(ledger)
        if not busy.acquire(blocking=False):
            return False
        try:
            if ledger.push_in_flight() is None or not ledger.hold_push_lock(self.owner, self.lock_seconds):
                return False
            return self._reconcile(self._new_outbox(ctx, ledger))
        finally:
            busy.release()

    def _reconcile(self, box: _Outbox) -> bool:
        """Read back the outcome of the call in flight, once its time has come: the tasks holding the prediction
        are pushed, the others go back to the outbox (a few paged reads; only after an unknown outcome).  The
        caller holds the push lock.  True when the outcome is known now."""
        ledger, ctx = box.ledger, box.ctx
        in_flight = ledger.push_in_flight()
        if in_flight is None or time.time() < in_flight.reconcile_at:
            return False
        gateway = self.predictor.gateway(ctx)
        if gateway is None or ctx.project is None:
            ledger.reconcile_later(time.time() + RECONCILE_RETRY)
            return False
        tasks = in_flight.tasks
        started = time.monotonic()
        try:
            found = gateway.predicted_among(int(ctx.project), [int(task) for task in tasks], ctx.model_version)
        except LabelStudioError as exc:
            log.warning("cannot read back the last push to project %s yet: %s", ctx.project, exc)
            ledger.reconcile_later(time.time() + RECONCILE_RETRY)
            return False
        landed = [task for task in tasks if int(task) in found]
        again = [task for task in tasks if int(task) not in found]
        ledger.settle_push(landed, again)
        if self.metrics is not None:
            self.metrics.count("label_studio_push_reconciled", len(landed), result="landed")
            self.metrics.count("label_studio_push_reconciled", len(again), result="sent_again")
        log.warning(
            "read back the push of %d predictions to project %s%s in %.2f s: %d landed, %d to send again",
            len(tasks),
            ctx.project,
            "" if in_flight.owner == self.owner else " (sent by a pusher that stopped)",
            time.monotonic() - started,
            len(landed),
            len(again),
        )
        return True

    def _observe(self, outcome: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe("label_studio_push_seconds", seconds, outcome=outcome)

    def backlog_full(self, ledger: Ledger) -> bool:
        """Whether so many predictions wait for Label Studio that the window should pause."""
        return ledger.outbox_size() > self.backlog_limit
