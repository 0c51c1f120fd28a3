"""Chunks of a batch job: exactly once per task and model version, whatever is redelivered or fails.

The runner works against fakeredis, the fake LLM and the recording Label Studio stand-in, both
over real HTTP.
"""

import time

import pytest

from shared.adapters.jobs import chunked
from shared.adapters.ledger import Ledger
from shared.adapters.store import ProjectSetup
from shared.domain.types import data_digest
from shared.services import Services
from tests.conftest import LS_TOKEN, labeling_config
from tests.integration.chunk_runs import run_chunk
from worker.chunks import LAPSE_MARGIN, ChunkRunner

# The fake model answers in prose, as the reference's did (OUTPUT_MODE=text); structured modes: test_structured_api.py
pytestmark = pytest.mark.prose_answers

TOKEN = LS_TOKEN
PROJECT = "12"


@pytest.fixture
def batch(make_settings, store, fake_label_studio, fake_llm):
    """A project set up as Label Studio would, and a way to start jobs and run their chunks."""
    # handover_grace=0: a push marked before a run counts as one from long ago (a crash, not a push in flight)
    settings = make_settings(
        batch_chunk_size=5, llm_max_retries=0, batch_max_attempts=3, cache_ttl=0, handover_grace=0.0
    )
    store.save_setup(PROJECT, ProjectSetup(labeling_config("sarcasm"), fake_label_studio.url, TOKEN))
    store.save_prompt(PROJECT, "Is it sarcastic?")
    fake_llm.reply = lambda messages, index: "Sarcastic"

    class Batch:
        services = Services.build(settings, store)
        projects, jobs = services.projects, services.jobs
        runner = ChunkRunner(settings, projects, services.predictor, jobs)

        def start(self, task_ids):
            """A job on tasks that Label Studio holds (``text i``), as Retrieve Predictions starts one."""
            ctx = self.projects.context(PROJECT, None, None)
            fake_label_studio.hold_tasks(int(PROJECT), [{"id": i, "data": data_of(i)} for i in task_ids])
            return self.jobs.create(self.projects.snapshot(ctx), list(task_ids), settings.batch_chunk_size), ctx

        def run_all(self, job_id, attempt=0, owner="worker-a", until=None):
            chunks = range(self.jobs.chunk_count(job_id))
            return [run_chunk(self.runner, job_id, i, attempt, owner, until) for i in chunks]

    return Batch()


def data_of(task_id: int) -> dict:
    return {"text": f"text {task_id}"}


def test_chunked_splits_in_order():
    assert list(chunked([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(chunked([], 3)) == []


def test_job_is_stored_in_chunks_with_a_snapshot(batch, store):
    job_id, ctx = batch.start(range(12))
    assert batch.jobs.chunk_count(job_id) == 3
    assert batch.jobs.chunk_task_ids(job_id, 2) == [10, 11]
    status = batch.jobs.status(job_id)
    assert (status.state, status.total, status.done, status.pushed, status.project) == ("queued", 12, 0, 0, PROJECT)
    assert status.model_version == ctx.model_version
    store.save_prompt(PROJECT, "A later prompt")
    assert batch.jobs.snapshot(job_id).prompt == "Is it sarcastic?"


def test_every_task_lands_once_with_the_version(batch, fake_label_studio, fake_llm):
    job_id, ctx = batch.start(range(12))
    outcomes = batch.run_all(job_id)
    assert [o.retry_in for o in outcomes] == [None, None, None]
    by_task = fake_label_studio.predictions_by_task()
    assert sorted(by_task) == list(range(12))
    for predictions in by_task.values():
        [prediction] = predictions
        assert prediction["model_version"] == ctx.model_version
        assert {r["from_name"]: r["value"] for r in prediction["result"]}["sentiment"] == {"choices": ["Sarcastic"]}
    assert fake_label_studio.import_calls == 3, "one bulk push per chunk"
    assert len(fake_llm.chat_requests) == 12
    status = batch.jobs.status(job_id)
    assert (status.state, status.done, status.failed, status.pushed) == ("done", 12, 0, 12)
    assert status.finished_at is not None
    tokens_in = sum(call.answer["usage"]["prompt_tokens"] for call in fake_llm.live_completions)
    # "Sarcastic": 9 characters, 3 tokens by the fake's rule
    assert (status.model, status.tokens_in, status.tokens_out) == ("gpt-3.5-turbo", tokens_in, 12 * 3)


def test_redelivered_finished_chunk_does_nothing(batch, fake_label_studio, fake_llm):
    job_id, _ = batch.start(range(5))
    batch.run_all(job_id)
    batch.run_all(job_id, owner="worker-b")
    assert len(fake_label_studio.predictions) == 5 and len(fake_llm.chat_requests) == 5


def test_a_second_job_for_the_same_version_skips_what_is_in_label_studio(batch, fake_label_studio, fake_llm):
    first, _ = batch.start(range(5))
    batch.run_all(first)
    second, _ = batch.start(range(8))
    batch.run_all(second)
    assert sorted(fake_label_studio.predictions_by_task()) == list(range(8))
    assert len(fake_label_studio.predictions) == 8
    assert len(fake_llm.chat_requests) == 8
    status = batch.jobs.status(second)
    assert (status.state, status.done, status.pushed) == ("done", 8, 8)


def test_prediction_made_before_a_crash_is_pushed_without_a_new_call(batch, fake_label_studio, fake_llm):
    job_id, ctx = batch.start(range(5))
    ledger = batch.jobs.ledger(PROJECT, ctx.model_version)
    answer = {"result": [], "score": 0.5, "model_version": ctx.model_version}
    ledger.keep_answer(0, answer, data_digest(data_of(0)), queue=False)
    batch.run_all(job_id)
    assert len(fake_llm.chat_requests) == 4
    assert [p["score"] for p in fake_label_studio.predictions_by_task()[0]] == [0.5]


def test_crash_after_push_before_bookkeeping_does_not_push_twice(batch, fake_label_studio, fake_llm):
    job_id, ctx = batch.start(range(5))
    ledger = batch.jobs.ledger(PROJECT, ctx.model_version)
    prediction = {"result": [], "score": 0.5, "model_version": ctx.model_version}
    ledger.keep_answer(3, prediction, data_digest(data_of(3)))
    assert list(ledger.take_batch(10)) == ["3"]  # as the pusher does before its call
    fake_label_studio._store(int(PROJECT), {"task": 3, **prediction})  # the push landed, then the worker died
    batch.run_all(job_id)
    assert len(fake_label_studio.predictions_by_task()[3]) == 1
    assert sorted(fake_label_studio.predictions_by_task()) == [0, 1, 2, 3, 4]
    assert batch.jobs.status(job_id).pushed == 5


def test_a_task_pushed_while_its_chunk_reads_label_studio_is_not_asked_again(
    batch, fake_label_studio, fake_llm, monkeypatch
):
    """The pusher's call lands between the chunk's read of what is pushed and its read of what is kept (the kept
    prediction leaves the ledger as the task counts as pushed): the task is in Label Studio, not asked again.
    Measured in the bench's elastic scenario: a chunk sent again after PUSH_PATIENCE, while a 5,000-prediction push
    ended, asked 94 answered tasks again."""
    job_id, ctx = batch.start(range(5))
    ledger = batch.jobs.ledger(PROJECT, ctx.model_version)
    prediction = {"result": [], "score": 0.5, "model_version": ctx.model_version}
    ledger.keep_answer(3, prediction, data_digest(data_of(3)))
    assert list(ledger.take_batch(10)) == ["3"]  # the pusher's call is under way
    kept = Ledger.kept
    landed = []

    def results_once_the_call_landed(self, digests):
        if not landed:  # the call lands now, between the chunk's two reads
            fake_label_studio._store(int(PROJECT), {"task": 3, **prediction})
            self.settle_push(["3"], [])
            landed.append(3)
        return kept(self, digests)

    monkeypatch.setattr(Ledger, "kept", results_once_the_call_landed)
    batch.run_all(job_id)
    assert landed == [3]
    assert len(fake_llm.chat_requests) == 4, "task 3 was answered and pushed: no second call"
    assert len(fake_label_studio.predictions_by_task()[3]) == 1
    assert batch.jobs.status(job_id).pushed == 5


def test_a_prediction_handed_over_moments_ago_is_left_to_land(batch, fake_label_studio, fake_llm, make_settings):
    """With the default grace, a task just handed to Label Studio (an opened task) is neither pushed nor re-asked."""
    job_id, ctx = batch.start(range(5))
    ledger = batch.jobs.ledger(PROJECT, ctx.model_version)
    ledger.hand_over_new(2, {"result": [], "score": 0.5, "model_version": ctx.model_version}, data_digest(data_of(2)))
    services = Services.build(make_settings(batch_chunk_size=5, cache_ttl=0), batch.jobs.store)
    runner = ChunkRunner(services.settings, services.projects, services.predictor, services.jobs)
    outcome = run_chunk(runner, job_id, 0, attempt=0, owner="worker-a")
    assert outcome.waiting == [2] and outcome.retry_in is not None
    assert sorted(fake_label_studio.predictions_by_task()) == [0, 1, 3, 4]
    assert len(fake_llm.chat_requests) == 4, "no LLM call for the task handed over"


def test_predictions_made_from_other_data_are_never_pushed(batch, fake_label_studio, fake_llm):
    """A caller's own data for task ids: a waiting result and a hand-over Label Studio never stored are dropped
    and predicted from Label Studio's data; a hand-over that Label Studio did store counts as pushed."""
    job_id, ctx = batch.start(range(5))
    ledger = batch.jobs.ledger(PROJECT, ctx.model_version)
    forged = {"result": [], "score": 0.123, "model_version": ctx.model_version}
    other = data_digest({"text": "FORGED"})
    ledger.keep_answer(0, forged, other, queue=False)
    ledger.hand_over_new(1, forged, other)
    ledger.hand_over_new(2, forged, other)
    fake_label_studio.add_prediction(int(PROJECT), 2, ctx.model_version, [])  # Label Studio stored this one
    [outcome] = batch.run_all(job_id)
    assert outcome.retry_in is None
    by_task = fake_label_studio.predictions_by_task()
    assert {task: len(found) for task, found in by_task.items()} == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}
    assert 0.123 not in [p["score"] for found in by_task.values() for p in found], "no forged prediction pushed"
    assert len(fake_llm.chat_requests) == 4, "every task but the one Label Studio holds is asked once"
    assert batch.jobs.status(job_id).pushed == 5


def test_tasks_claimed_by_a_concurrent_delivery_are_left_alone(batch, fake_label_studio, fake_llm):
    job_id, ctx = batch.start(range(5))
    ledger = batch.jobs.ledger(PROJECT, ctx.model_version)
    claims = ledger.claim([1, 2], "worker-b", 30)
    [outcome] = batch.run_all(job_id)
    assert sorted(outcome.waiting) == [1, 2] and outcome.retry_in is not None
    assert sorted(fake_label_studio.predictions_by_task()) == [0, 3, 4]
    assert batch.jobs.status(job_id).state == "running"
    claims.release()
    [outcome] = batch.run_all(job_id, attempt=1)
    assert outcome.retry_in is None
    assert sorted(fake_label_studio.predictions_by_task()) == [0, 1, 2, 3, 4]
    assert len(fake_label_studio.predictions) == 5 and len(fake_llm.chat_requests) == 5
    assert batch.jobs.status(job_id).state == "done"


def test_a_chunk_waiting_for_a_dead_processs_claims_runs_again_once_they_lapse(batch, fake_label_studio, make_settings):
    """Tasks claimed by a process that died (its claims no longer renewed): on a late attempt, whose backoff has
    grown to 30–60 s, the chunk runs again just after the claims lapse, not a backoff later (a worker killed mid-job:
    its job then took up to 63 s instead of ~31 s with the default ``BATCH_CLAIM_SECONDS``)."""
    job_id, ctx = batch.start(range(5))
    batch.jobs.ledger(PROJECT, ctx.model_version).claim([1, 2], "a-worker-that-died", 5)
    outcome = run_chunk(default_attempts(batch, make_settings), job_id, 0, attempt=10, owner="worker-a")
    assert sorted(outcome.waiting) == [1, 2]
    assert 3.0 <= outcome.retry_in <= 5.0 + LAPSE_MARGIN
    assert sorted(fake_label_studio.predictions_by_task()) == [0, 3, 4]


def test_a_chunk_waiting_for_a_dead_pushers_call_runs_again_when_the_call_is_read_back(
    batch, fake_label_studio, make_settings
):
    """Tasks in an import call whose pusher died mid-call (its outcome unknown): the chunk runs again once the call
    may be read back, not a grown backoff later.  Until then nothing is pushed to the project."""
    job_id, ctx = batch.start(range(5))
    ledger = batch.jobs.ledger(PROJECT, ctx.model_version)
    prediction = {"result": [], "score": 0.5, "model_version": ctx.model_version}
    for task_id in (1, 2):
        ledger.keep_answer(task_id, prediction, data_digest(data_of(task_id)))
    taken = ledger.take_batch(2)
    ledger.record_push("a-pusher-that-died", taken, reconcile_at=time.time() + 6, answer_by=time.time() + 3)
    runner = default_attempts(batch, make_settings)
    outcome = run_chunk(runner, job_id, 0, attempt=10, owner="worker-a", until=lambda: True)  # the push loop waits
    assert sorted(outcome.waiting) == [0, 1, 2, 3, 4]
    assert 4.0 <= outcome.retry_in <= 6.0 + LAPSE_MARGIN
    assert fake_label_studio.predictions == []


def default_attempts(batch, make_settings) -> ChunkRunner:
    """A runner with the default ``BATCH_MAX_ATTEMPTS``: a late attempt is not the last."""
    services = Services.build(make_settings(batch_chunk_size=5, cache_ttl=0, handover_grace=0.0), batch.jobs.store)
    return ChunkRunner(services.settings, services.projects, services.predictor, services.jobs)


def test_refused_key_fails_each_task_once_with_the_providers_message(batch, fake_label_studio, fake_llm):
    job_id, _ = batch.start(range(5))
    fake_llm.fail_next(401, times=5, message="Incorrect API key provided")
    [outcome] = batch.run_all(job_id)
    assert outcome.failed == 5 and outcome.retry_in is None
    status = batch.jobs.status(job_id)
    assert (status.state, status.failed, status.done) == ("failed", 5, 0)
    # each task's error, in the order their calls came back
    assert sorted(status.errors, key=lambda error: error["task"]) == [
        {"task": task, "error": "openai answered 401: Incorrect API key provided"} for task in range(5)
    ]
    batch.run_all(job_id)  # a late redelivery
    assert len(fake_llm.chat_requests) == 5
    assert fake_label_studio.predictions == []


def test_rate_limited_tasks_wait_and_land_on_a_later_attempt(batch, fake_label_studio, fake_llm):
    job_id, _ = batch.start(range(5))
    fake_llm.fail_next(429, times=2, headers={"Retry-After": "1"})
    [outcome] = batch.run_all(job_id)
    assert len(outcome.waiting) == 2 and outcome.retry_in is not None
    assert len(fake_label_studio.predictions) == 3
    [outcome] = batch.run_all(job_id, attempt=1)
    assert outcome.retry_in is None
    assert sorted(fake_label_studio.predictions_by_task()) == [0, 1, 2, 3, 4]
    assert batch.jobs.status(job_id).state == "done"


def test_rate_limit_on_the_last_attempt_fails_the_task(batch, fake_llm):
    job_id, _ = batch.start(range(5))
    fake_llm.fail_next(429, times=1, headers={"Retry-After": "1"})
    [outcome] = batch.run_all(job_id, attempt=2)
    assert outcome.failed == 1 and outcome.retry_in is None
    status = batch.jobs.status(job_id)
    assert (status.state, status.done, status.failed) == ("partial", 4, 1)


def test_label_studio_down_keeps_predictions_until_it_is_back(batch, fake_label_studio, fake_llm):
    job_id, _ = batch.start(range(5))
    fake_label_studio.taking_imports = False
    [outcome] = batch.run_all(job_id, until=lambda: fake_label_studio.read_backs > 0)  # a call tried and read back
    assert outcome.predicted == 5 and outcome.pushed == 0 and outcome.retry_in is not None
    assert batch.jobs.status(job_id).pushed == 0
    fake_label_studio.taking_imports = True
    [outcome] = batch.run_all(job_id, attempt=1)
    assert outcome.pushed == 5 and outcome.retry_in is None
    assert len(fake_llm.chat_requests) == 5, "no new LLM calls for predictions waiting to be pushed"
    assert sorted(fake_label_studio.predictions_by_task()) == [0, 1, 2, 3, 4]


def test_tasks_wait_without_an_llm_call_while_label_studio_cannot_say_what_they_hold(
    batch, fake_label_studio, fake_llm
):
    job_id, _ = batch.start(range(5))
    fake_label_studio.available = False
    [outcome] = batch.run_all(job_id)
    assert sorted(outcome.waiting) == [0, 1, 2, 3, 4] and outcome.retry_in is not None
    assert fake_llm.chat_requests == [], "nothing is predicted from data Label Studio has not given"
    fake_label_studio.available = True
    [outcome] = batch.run_all(job_id, attempt=1)
    assert outcome.pushed == 5 and outcome.retry_in is None
    assert len(fake_llm.chat_requests) == 5
    assert sorted(fake_label_studio.predictions_by_task()) == [0, 1, 2, 3, 4]


def test_a_task_label_studio_refuses_fails_alone(batch, fake_label_studio):
    job_id, _ = batch.start(range(5))
    fake_label_studio.refused_tasks = {2}
    [outcome] = batch.run_all(job_id)
    assert outcome.pushed == 4 and outcome.failed == 1
    assert sorted(fake_label_studio.predictions_by_task()) == [0, 1, 3, 4]
    status = batch.jobs.status(job_id)
    assert status.state == "partial"
    assert status.errors[0]["task"] == 2 and "Label Studio refused the prediction" in status.errors[0]["error"]


def test_abandoned_chunk_fails_its_open_tasks_and_lets_the_job_finish(batch):
    job_id, _ = batch.start(range(7))
    run_chunk(batch.runner, job_id, 0, 0, "worker-a")
    batch.runner.abandon(job_id, 1, "gave up after 3 attempts: RuntimeError")
    status = batch.jobs.status(job_id)
    assert (status.state, status.done, status.failed) == ("partial", 5, 2)


def test_a_cancelled_job_runs_no_more_chunks(batch, fake_label_studio, fake_llm):
    job_id, _ = batch.start(range(12))
    run_chunk(batch.runner, job_id, 0, 0, "worker-a")
    assert batch.jobs.cancel(job_id).state == "cancelled"
    assert batch.jobs.unfinished_chunks(job_id) == [1, 2]
    run_chunk(batch.runner, job_id, 1, 0, "worker-a")
    run_chunk(batch.runner, job_id, 2, 0, "worker-a")
    assert len(fake_llm.chat_requests) == 5 and len(fake_label_studio.predictions) == 5
    status = batch.jobs.status(job_id)
    assert (status.state, status.pushed) == ("cancelled", 5)
    assert batch.jobs.cancel(job_id).state == "cancelled", "cancelling twice changes nothing"
