"""A chunk run as a worker process runs it, for tests that drive a ``ChunkRunner`` without Celery.

``ChunkRunner.start`` hands the chunk's tasks to the window; the project's push loop pushes what they answer, one
round at a time (``Pusher.tend``, what its thread does every ``TICK``; run here, in the test's thread, so each round
ends before the test looks); then the tracker's step (``ChunkRunner.settle``) finishes the chunk, impatient: what is
not in Label Studio by then stays open, as after ``PUSH_PATIENCE``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.adapters.ledger import Ledger
from worker.chunks import ChunkOutcome, ChunkRunner, PendingChunk
from worker.pusher import TICK, Pusher


def push(pusher: Pusher, ledger: Ledger, until: Callable[[], bool] | None = None, timeout: float = 60.0) -> None:
    """Rounds of the ledger's push loop until nothing waits in its outbox and no call's outcome is unknown (read
    back once its time has come), or until ``until()`` (Label Studio refusing every call: the outbox never
    drains)."""
    done = until or (lambda: ledger.push_in_flight() is None and ledger.outbox_size() == 0)
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the push loop did not drain the outbox"
        pusher.tend(ledger)
        time.sleep(TICK)


def settle_all(
    runner: ChunkRunner, pending: list[PendingChunk], until: Callable[[], bool] | None = None
) -> list[ChunkOutcome]:
    """Wait for the chunks' LLM calls, push what they answered, and settle each."""
    for chunk in pending:
        for call in chunk.calls:
            call.exception()  # wait: a call never raises, but a bug must not pass silently
    for ledger in {(chunk.ledger.project, chunk.ledger.version): chunk.ledger for chunk in pending}.values():
        push(runner.pusher, ledger, until)
    outcomes = [runner.settle(chunk, patient=False) for chunk in pending]
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def run_chunk(
    runner: ChunkRunner, job_id: str, index: int, attempt: int, owner: str, until: Callable[[], bool] | None = None
) -> ChunkOutcome:
    """One delivery of a chunk, from its start to its settling; an empty outcome when there was nothing to do."""
    pending = runner.start(job_id, index, attempt, owner)
    if pending is None:
        return ChunkOutcome()
    [outcome] = settle_all(runner, [pending], until)
    return outcome
