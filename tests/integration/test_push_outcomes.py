"""A push whose outcome the backend cannot know is read back from Label Studio, never blindly repeated (issue #24).

Label Studio stores an import and then answers after the client's read timeout, answers 500, drops the
connection, or holds the call while its pusher is SIGKILLed: an import takes no client-supplied id, so sending it
again would store it twice.  Each case ends with one prediction per task and one LLM call per task.  The runner
works against fakeredis, the fake LLM and the recording Label Studio stand-in over HTTP, as in
``test_window_and_pusher.py``; the last test kills a real worker process on the real Redis.
"""

from __future__ import annotations

import collections
import re
import threading
import time

import fakeredis
import psutil
import pytest
import redis

from shared.adapters.jobs import Jobs
from shared.adapters.label_studio import LabelStudioAccess
from shared.adapters.store import Store
from shared.services import Services
from tests.conftest import real_redis_url
from tests.integration.chunk_runs import push, settle_all
from tests.integration.test_window_and_pusher import PROJECT, ProjectSetup, assert_every_task_once
from tests.integration.test_worker import TOKEN, assert_once_each, labeling_config, stack  # noqa: F401
from worker.chunks import ChunkRunner
from worker.pusher import Pusher

pytestmark = pytest.mark.prose_answers

TASKS = 30
CHUNK = 10
READ_TIMEOUT = 0.5  # the pusher's read timeout, lowered: the stand-in answers after 3 s


@pytest.fixture
def redis_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def batch(make_settings, redis_server, fake_label_studio, fake_llm):
    settings = make_settings(
        batch_chunk_size=CHUNK,
        llm_concurrency=4,
        llm_max_retries=0,
        cache_ttl=0,
        handover_grace=0.0,  # a push marked before this run counts as one from long ago
        push_timeout_min=READ_TIMEOUT,
        push_timeout_max=READ_TIMEOUT,
    )
    store = Store(fakeredis.FakeRedis(server=redis_server, decode_responses=True), "test")
    store.save_setup(PROJECT, ProjectSetup(labeling_config("sarcasm"), fake_label_studio.url, TOKEN))
    store.save_prompt(PROJECT, "Is it sarcastic?")
    fake_llm.reply = lambda messages, index: "Sarcastic"

    class Batch:
        services = Services.build(settings, store)
        projects, jobs = services.projects, services.jobs
        runner = ChunkRunner(settings, projects, services.predictor, jobs)

        def start(self, count: int = TASKS) -> str:
            ctx = self.projects.context(PROJECT, None, None)
            fake_label_studio.hold_tasks(int(PROJECT), [{"id": i, "data": {"text": f"text {i}"}} for i in range(count)])
            return self.jobs.create(self.projects.snapshot(ctx), list(range(count)), CHUNK)

        def feed(self, job_id: str) -> list:
            chunks = range(self.jobs.chunk_count(job_id))
            pending = [self.runner.start(job_id, index, 0, "worker-a") for index in chunks]
            for chunk in pending:
                for call in chunk.calls:
                    call.result()
            return pending

        def drain(self, pending: list) -> list:
            """What the push loop does: push, and read back an unknown outcome once its time has come, until
            nothing waits; then settle the chunks."""
            return settle_all(self.runner, pending)

    return Batch()


def assert_one_llm_call_per_task(fake_llm, count: int) -> None:
    calls = collections.Counter(str(request.body["messages"]) for request in fake_llm.chat_requests)
    assert len(calls) == count and max(calls.values()) == 1, "one LLM call per task"


def test_the_happy_path_reads_nothing_back(batch, fake_label_studio, fake_llm):
    job_id = batch.start()
    outcomes = batch.drain(batch.feed(job_id))
    assert [outcome.retry_in for outcome in outcomes] == [None] * (TASKS // CHUNK)
    assert_every_task_once(fake_label_studio, TASKS)
    assert fake_label_studio.read_backs == 0, "no read of Label Studio when every call is answered"


@pytest.mark.parametrize(
    "fault",
    [
        "late",  # stored, then answered after the client's read timeout
        "error",  # stored, then 500
        "drop",  # stored, then the connection closed without an answer
    ],
)
def test_a_push_stored_without_a_known_outcome_is_read_back_not_sent_again(batch, fake_label_studio, fake_llm, fault):
    fake_label_studio.import_fault = fault
    job_id = batch.start()
    outcomes = batch.drain(batch.feed(job_id))
    assert [outcome.retry_in for outcome in outcomes] == [None] * (TASKS // CHUNK)
    assert_every_task_once(fake_label_studio, TASKS)
    assert_one_llm_call_per_task(fake_llm, TASKS)
    assert fake_label_studio.import_calls == 1, "the call was read back, not repeated"
    assert fake_label_studio.read_backs >= 1
    status = batch.jobs.status(job_id)
    assert (status.state, status.done, status.pushed) == ("done", TASKS, TASKS)


def test_no_other_pusher_sends_for_the_project_while_an_outcome_is_unknown(batch, fake_label_studio, fake_llm):
    """One import per project in flight, fleet-wide: the lock stays with the pusher whose call timed out until it
    has read the call back, even though its tasks' chunks would have the rest pushed."""
    fake_label_studio.import_fault = "late"
    job_id = batch.start()
    first, *rest = batch.feed(job_id)
    ctx, ledger = first.ctx, first.ledger
    push(batch.runner.pusher, ledger, until=lambda: fake_label_studio.import_calls > 0)
    assert ledger.push_in_flight() is not None, "the call timed out: its outcome is unknown"
    batch.jobs.ledger(PROJECT, ctx.model_version).queue_push(list(range(TASKS)))  # as the chunks would
    other = Pusher(batch.services.predictor)
    other.watch(ctx, ledger)
    other.tend(ledger)  # a round of another process's push loop
    assert fake_label_studio.import_calls == 1, "another pusher sent nothing meanwhile"
    batch.drain([first, *rest])
    assert_every_task_once(fake_label_studio, TASKS)
    assert fake_label_studio.import_calls == 1


def test_only_what_did_not_land_is_sent_again(batch, fake_label_studio, fake_llm):
    """Label Studio with its memory-efficient import commits 500 predictions at a time: a call cut short may
    leave some stored and some not."""
    fake_label_studio.import_fault, fake_label_studio.stored_share = "drop", 0.4
    job_id = batch.start()
    batch.drain(batch.feed(job_id))
    assert_every_task_once(fake_label_studio, TASKS)
    assert_one_llm_call_per_task(fake_llm, TASKS)
    assert fake_label_studio.import_calls == 2
    assert len(fake_label_studio.predictions) == TASKS


def test_the_push_lock_is_released_only_by_its_holder(real_store):
    """Compare and delete in one step: a pusher whose lock lapsed and was taken over cannot release the new
    holder's lock (a read then a delete could, between the two)."""
    ledger = Jobs(real_store, ttl=60).ledger(PROJECT, "v1")
    assert ledger.hold_push_lock("first", 0.05)
    time.sleep(0.1)  # it lapses
    assert ledger.hold_push_lock("second", 30)
    ledger.release_push_lock("first")
    assert not ledger.hold_push_lock("first", 30), "the second pusher still holds it"
    ledger.release_push_lock("second")
    assert ledger.hold_push_lock("first", 30)


def test_a_read_back_of_5000_tasks_takes_a_few_reads_of_short_urls(batch, fake_label_studio):
    """The ids travel in the URL: pages of them, each request under what proxies pass (nginx: 8 KB)."""
    ids = list(range(100_000, 105_000))
    fake_label_studio.hold_tasks(int(PROJECT), [{"id": task_id, "data": {"text": "t"}} for task_id in ids])
    for task_id in ids[::3]:
        fake_label_studio.add_prediction(int(PROJECT), task_id, "gpt-4o-0123456789", [])
    gateway = batch.services.predictor.label_studio(LabelStudioAccess(fake_label_studio.url, TOKEN))
    assert gateway.predicted_among(int(PROJECT), ids, "gpt-4o-0123456789") == set(ids[::3])
    assert fake_label_studio.read_backs <= 8
    assert fake_label_studio.longest_read_back < 7000


def test_an_answer_redis_could_not_take_is_kept_and_recorded_later(batch, redis_server, fake_label_studio, fake_llm):
    """Redis goes away while the LLM answers: the answers wait in memory and are recorded once it is back,
    without a second LLM call."""
    fake_llm.delay = 1.0
    count = 4  # the window's size: every call in flight before Redis goes
    job_id = batch.start(count)
    chunk = batch.runner.start(job_id, 0, 0, "worker-a")
    while fake_llm.in_flight < count:
        time.sleep(0.01)
    redis_server.connected = False
    for call in chunk.calls:
        call.result()
    assert len(chunk.unrecorded) == count, "every answer came while Redis was away"
    with pytest.raises(redis.ConnectionError):
        batch.runner.settle(chunk)
    redis_server.connected = True
    while (outcome := batch.runner.settle(chunk)) is None:  # what the tracker does, every tick
        batch.runner.pusher.tend(chunk.ledger)  # and the push loop
        time.sleep(0.05)
    assert outcome.retry_in is None and outcome.pushed == count
    assert_every_task_once(fake_label_studio, count)
    assert_one_llm_call_per_task(fake_llm, count)


def test_a_full_window_waits_for_a_redis_connection_instead_of_failing(redis_prefix):
    """More threads than the pool's connections, each holding one for a while: they wait, none fails with
    ``MaxConnectionsError`` (the default pool of 100 did at the 101st)."""
    store = Store.from_url(real_redis_url(), redis_prefix, threads=100)
    errors: list[Exception] = []

    def hold_a_connection() -> None:
        try:
            store.redis.blpop([store.key("nothing")], timeout=0.5)
        except Exception as exc:  # noqa: BLE001  (what the test looks for)
            errors.append(exc)

    threads = [threading.Thread(target=hold_a_connection) for _ in range(300)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.fault_recovery
@pytest.mark.timeout(300)
def test_a_pusher_killed_mid_call_leaves_the_read_back_to_its_successor(stack, fake_label_studio, fake_llm):  # noqa: F811
    """A real worker's child is SIGKILLed while Label Studio (having stored the call) holds its import open: the
    process that takes the push lock after it reads the call back instead of sending it again."""
    fake_label_studio.import_fault = "hold"
    worker = stack.worker(PUSH_TIMEOUT_MIN="3", PUSH_TIMEOUT_MAX="3")
    job_id = stack.submit(40)
    assert fake_label_studio.import_held.wait(120), "no import call came"
    stack.wait(job_id, until=lambda status: status["done"] == 40)  # every answer kept: none is asked again
    port = fake_label_studio.import_clients[0]
    children = psutil.Process(worker.process.pid).children()
    [pusher] = [child for child in children if any(c.laddr.port == port for c in child.net_connections("tcp"))]
    pusher.kill()
    pusher.wait()
    fake_label_studio.release.set()

    status = stack.wait(job_id, timeout=180)
    assert (status["state"], status["done"], status["pushed"]) == ("done", 40, 40)
    assert_once_each(fake_label_studio, 40, stack.version, stack.config)
    assert_one_llm_call_per_task(fake_llm, 40)
    assert fake_label_studio.read_backs >= 1
    assert re.search(r"\(sent by a pusher that stopped\) in [\d.]+ s: [1-9]\d* landed, 0 to send again", worker.log)
