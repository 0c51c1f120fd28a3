"""The LLM window and the pusher (issue #16): calls flow across chunk boundaries, pushes gather chunks.

The runner works against fakeredis, the fake LLM and the recording Label Studio stand-in over HTTP, as in
``test_chunks.py``; the last test runs two real worker processes on the real Redis.
"""

from __future__ import annotations

import collections
import math
import re
import threading
import time

import pytest

from shared.adapters.store import ProjectSetup
from shared.domain.config import setting_default
from shared.services import Services
from tests.conftest import LS_TOKEN, labeling_config
from tests.integration.chunk_runs import push, settle_all
from tests.integration.test_worker import assert_once_each, stack  # noqa: F401  (the fixture)
from worker.chunks import ChunkRunner

pytestmark = pytest.mark.prose_answers

PROJECT = "12"
WINDOW = 4
CHUNK = 5


@pytest.fixture
def make_batch(make_settings, store, fake_label_studio, fake_llm):
    """A runner on these settings (beside the module's own: chunks of ``CHUNK``, a window of ``WINDOW``)."""
    store.save_setup(PROJECT, ProjectSetup(labeling_config("sarcasm"), fake_label_studio.url, TOKEN))
    store.save_prompt(PROJECT, "Is it sarcastic?")
    fake_llm.reply = lambda messages, index: "Sarcastic"

    def make(**overrides):
        settings = make_settings(
            **{
                "batch_chunk_size": CHUNK,
                "llm_concurrency": WINDOW,
                "llm_max_retries": 0,
                "cache_ttl": 0,
                "handover_grace": 0.0,
            }
            | overrides
        )
        services = Services.build(settings, store)
        return Batch(services, ChunkRunner(settings, services.projects, services.predictor, services.jobs))

    class Batch:
        def __init__(self, services: Services, runner: ChunkRunner) -> None:
            self.services, self.runner = services, runner
            self.projects, self.jobs = services.projects, services.jobs

        def start(self, count: int, chunk_size: int = CHUNK) -> str:
            ctx = self.projects.context(PROJECT, None, None)
            fake_label_studio.hold_tasks(int(PROJECT), [{"id": i, "data": {"text": f"text {i}"}} for i in range(count)])
            return self.jobs.create(self.projects.snapshot(ctx), list(range(count)), chunk_size)

        def feed(self, job_id: str) -> list:
            """What the Celery tasks do: hand each chunk to the window, take the next once all are in flight."""
            pending = []
            for index in range(self.jobs.chunk_count(job_id)):
                pending.append(self.runner.start(job_id, index, 0, "worker-a"))
                self.runner.window.wait_for_room()
            return pending

        def finish(self, pending: list) -> list:
            return settle_all(self.runner, pending)

    return make


@pytest.fixture
def batch(make_batch):
    return make_batch()


TOKEN = LS_TOKEN


def task_of(messages: str) -> int:
    return int(re.search(r"text (\d+)", messages)[1])


def test_a_slow_call_holds_only_its_own_task(batch, fake_llm, fake_label_studio):
    fake_llm.delay = lambda messages: 5.0 if "text 0" in str(messages) else 0.1
    job_id = batch.start(2 * CHUNK)
    first, second = batch.feed(job_id)
    for call in second.calls:
        call.result()
    assert not first.predictions_done(), "the first chunk's slow call is still in flight"
    push(batch.runner.pusher, second.ledger)
    outcome = batch.runner.settle(second, patient=False)
    assert (outcome.pushed, outcome.retry_in) == (CHUNK, None), "the next chunk landed meanwhile"
    assert sorted(fake_label_studio.predictions_by_task()) == list(range(1, 2 * CHUNK))
    assert batch.runner.settle(first) is None, "the slow task's chunk waits for it"

    [outcome] = batch.finish([first])
    assert outcome.retry_in is None
    status = batch.jobs.status(job_id)
    assert (status.state, status.done, status.pushed) == ("done", 2 * CHUNK, 2 * CHUNK)
    assert fake_label_studio.import_calls == 2


def test_the_window_stays_full_across_chunk_boundaries(batch, fake_llm, fake_label_studio):
    fake_llm.delay = 0.3
    job_id = batch.start(3 * CHUNK)
    outcomes = batch.finish(batch.feed(job_id))
    assert [outcome.retry_in for outcome in outcomes] == [None, None, None]
    assert fake_llm.peak_in_flight == WINDOW, "never more calls in flight than LLM_CONCURRENCY, and that many"
    spans = collections.defaultdict(list)
    for started, ended, messages in fake_llm.call_spans:
        spans[task_of(messages) // CHUNK].append((started, ended))
    for chunk in (1, 2):
        next_starts = min(started for started, _ in spans[chunk])
        previous_ends = max(ended for _, ended in spans[chunk - 1])
        assert next_starts < previous_ends, f"chunk {chunk}'s calls began while chunk {chunk - 1}'s were in flight"
    assert_every_task_once(fake_label_studio, 3 * CHUNK)


def test_one_push_gathers_the_predictions_of_several_chunks(batch, fake_label_studio, fake_llm):
    job_id = batch.start(8 * CHUNK)
    outcomes = batch.finish(batch.feed(job_id))
    assert sum(outcome.pushed for outcome in outcomes) == 8 * CHUNK
    assert fake_label_studio.import_calls == 1, "eight chunks, one import call"
    assert_every_task_once(fake_label_studio, 8 * CHUNK)
    assert batch.jobs.status(job_id).state == "done"


def test_a_refused_batch_is_bisected_to_the_refused_predictions(batch, fake_label_studio, fake_llm):
    count, refused = 200, {37, 150}
    fake_label_studio.refused_tasks = set(refused)
    job_id = batch.start(count, chunk_size=50)
    outcomes = batch.finish(batch.feed(job_id))
    assert sum(outcome.failed for outcome in outcomes) == len(refused)
    assert sorted(fake_label_studio.predictions_by_task()) == sorted(set(range(count)) - refused)
    assert all(len(found) == 1 for found in fake_label_studio.predictions_by_task().values())
    bisections = 1 + 2 * len(refused) * math.ceil(math.log2(count))
    assert fake_label_studio.import_calls <= bisections, "halves, not one call per prediction"
    status = batch.jobs.status(job_id)
    assert {error["task"] for error in status.errors} == refused
    assert all("Label Studio refused the prediction" in error["error"] for error in status.errors)
    assert (status.state, status.pushed, status.failed) == ("partial", count - len(refused), len(refused))


def test_the_window_pauses_while_label_studio_falls_behind(make_batch, fake_label_studio, fake_llm):
    batch = make_batch(push_backlog_limit=CHUNK)
    job_id = batch.start(3 * CHUNK)
    first = batch.runner.start(job_id, 0, 0, "worker-a")
    second = batch.runner.start(job_id, 1, 0, "worker-a")
    for call in first.calls + second.calls:
        call.result()
    assert second.ledger.outbox_size() == 2 * CHUNK, "nothing pushed yet: the outbox is over its limit"

    third: list = []
    feeder = threading.Thread(target=lambda: third.append(batch.runner.start(job_id, 2, 0, "worker-a")))
    feeder.start()
    feeder.join(timeout=2)
    assert feeder.is_alive() and len(fake_llm.chat_requests) == 2 * CHUNK, "no new call while the backlog is full"

    push(batch.runner.pusher, first.ledger)
    feeder.join(timeout=30)
    assert not feeder.is_alive()
    outcomes = batch.finish([first, second, third[0]])
    assert [outcome.retry_in for outcome in outcomes] == [None, None, None]
    assert len(fake_llm.chat_requests) == 3 * CHUNK
    assert_every_task_once(fake_label_studio, 3 * CHUNK)


def test_a_chunk_waits_for_its_tasks_while_the_pusher_lands_calls(make_batch, fake_label_studio, fake_llm):
    """A backlog of several calls' worth, each call slower than a chunk's patience (Label Studio without its flag):
    the outbox is drawn at random, so a chunk's tasks may land many calls after they were predicted.  While calls
    land, each chunk keeps waiting and counts its tasks as pushed as they land: the job's ``pushed`` follows Label
    Studio (it lagged by 28,000 of 65,749 at 100,000 tasks when chunks gave up after ``PUSH_PATIENCE`` and waited
    for a re-run to count theirs)."""
    chunks, call_seconds = 8, 1.0
    batch = make_batch(
        push_patience=4.0,  # shorter than the calls' total (8 s), well over one call: a loaded machine's pause
        # between one call landing and the next starting stays within it
        handover_grace=setting_default("handover_grace"),  # tasks taken for a call count as on their way before the
        # call is recorded (with the module's 0 s, a chunk looking in between gave up: 2 runs in 7)
        push_min_predictions=CHUNK,  # a call per chunk's worth
        push_max_predictions=CHUNK,
    )
    fake_label_studio.import_fault, fake_label_studio.faults_left = "late", chunks  # stored, answered after:
    fake_label_studio.late_seconds = call_seconds  # within the read timeout (PUSH_TIMEOUT_MIN, 60 s)
    job_id = batch.start(chunks * CHUNK)
    pending = batch.feed(job_id)
    for chunk in pending:
        for call in chunk.calls:
            call.result()
    assert [batch.runner.settle(chunk) for chunk in pending] == [None] * chunks, "all in the outbox"

    batch.runner.pusher.start()  # the push loop's thread
    outcomes: dict[int, object] = {}
    while len(outcomes) < chunks:  # what the tracker does, every tick
        for chunk in pending:
            if chunk.index not in outcomes and (outcome := batch.runner.settle(chunk)) is not None:
                outcomes[chunk.index] = outcome
        time.sleep(0.05)
    batch.runner.pusher.stop()
    assert fake_label_studio.import_calls == chunks
    assert [outcomes[index].retry_in for index in range(chunks)] == [None] * chunks, "no chunk ran again"
    status = batch.jobs.status(job_id)
    assert (status.state, status.pushed) == ("done", chunks * CHUNK)
    assert_every_task_once(fake_label_studio, chunks * CHUNK)


def test_a_chunk_waits_no_longer_than_its_patience_while_no_call_lands(make_batch, fake_label_studio):
    """The other side of waiting while calls land: Label Studio refuses every import (503), each attempt a call
    begun and failed at once; the chunk runs again ``PUSH_PATIENCE`` after its last prediction."""
    batch = make_batch(push_patience=1.0)
    fake_label_studio.taking_imports = False
    job_id = batch.start(CHUNK)
    [chunk] = batch.feed(job_id)
    for call in chunk.calls:
        call.result()
    started = time.monotonic()
    while (outcome := batch.runner.settle(chunk)) is None:
        batch.runner.pusher.tend(chunk.ledger)  # a round of the push loop
        assert time.monotonic() - started < 30, "the chunk kept waiting for calls that fail"
        time.sleep(0.05)
    assert fake_label_studio.import_calls == 0 and outcome.retry_in is not None
    assert sorted(outcome.waiting) == list(range(CHUNK))
    assert batch.jobs.status(job_id).pushed == 0


def assert_every_task_once(fake_label_studio, count: int) -> None:
    by_task = fake_label_studio.predictions_by_task()
    assert sorted(by_task) == list(range(count))
    assert all(len(found) == 1 for found in by_task.values())


@pytest.mark.timeout(300)
def test_two_worker_processes_push_few_large_batches_exactly_once(stack, fake_label_studio, fake_llm):  # noqa: F811
    fake_llm.delay = 0.05
    stack.worker()
    stack.worker()
    job_id = stack.submit(400)
    status = stack.wait(job_id)
    assert (status["state"], status["done"], status["pushed"], status["failed"]) == ("done", 400, 400, 0)
    assert_once_each(fake_label_studio, 400, stack.version, stack.config)
    calls = collections.Counter(str(request.body["messages"]) for request in fake_llm.chat_requests)
    assert len(calls) == 400 and max(calls.values()) == 1, "one LLM call per task"
    assert fake_label_studio.import_calls <= 10, "20 chunks of 20 from four processes, a few large pushes"


def test_a_closed_window_hands_back_what_it_has_not_started_and_lets_the_rest_finish():
    """What a stopping worker relies on: ``close`` cancels the queued work at once, without waiting for a free place,
    and the work in flight runs to its end."""
    from worker.window import LLMWindow

    window = LLMWindow(2)
    release = threading.Event()
    started = [window.submit(lambda: release.wait(10)) for _ in range(2)]
    queued = [window.submit(lambda: "never") for _ in range(3)]
    deadline = time.monotonic() + 5
    while window.in_flight < 2:
        assert time.monotonic() < deadline, "the window started its first two"
        time.sleep(0.01)
    assert window.close() == 3
    assert all(call.cancelled() for call in queued), "handed back before any place was free"
    assert window.in_flight == 2 and not window.wait_idle(0.1)
    release.set()
    assert window.wait_idle(5) and [call.result() for call in started] == [True, True]
    assert window.submit(lambda: "late").cancelled(), "a closed window starts nothing more"
    window.wait_for_room()  # nothing queued: it does not block
