"""Job state changes are atomic: a cancel racing a worker never comes back to life, a pause racing a worker never
loses a chunk; each job keeps its quota of chunks queued; a claim or push lock taken over is never dropped by its
former owner (real Redis)."""

from __future__ import annotations

import functools
import threading
import time

import pytest

from shared.adapters.jobs import Jobs, JobState
from shared.domain.errors import JobPaused
from shared.domain.estimation.pricing import TokenUsage
from shared.domain.types import JobSnapshot
from shared.services import Services

ITERATIONS = 300
SNAPSHOT = JobSnapshot(
    project="1", label_config="<View/>", extra_params={}, model_version="v", model="m", prompt="p", prompt_error=None
)


def race(*steps) -> None:
    """Run the steps in threads released at the same instant."""
    barrier = threading.Barrier(len(steps))

    def run(step) -> None:
        barrier.wait()
        step()

    threads = [threading.Thread(target=run, args=(step,)) for step in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_cancel_racing_mark_running_and_finish_chunk_always_wins(real_store):
    jobs = Jobs(real_store, ttl=600)
    outcomes: dict[str, int] = {}
    for _ in range(ITERATIONS):
        job_id = jobs.create(SNAPSHOT, [1, 2], chunk_size=1)
        cancelled: list[JobState] = []

        def worker(job_id: str = job_id) -> None:
            for index in (0, 1):
                jobs.mark_running(job_id)
                jobs.add(job_id, "done", [index + 1])
                jobs.finish_chunk(job_id, index)

        def cancel(job_id: str = job_id, cancelled: list[JobState] = cancelled) -> None:
            cancelled.append(jobs.cancel(job_id).state)

        race(worker, cancel)
        final = jobs.status(job_id)
        if cancelled[0] == JobState.CANCELLED:
            assert final.state == JobState.CANCELLED, f"job {job_id} was cancelled, then became {final.state}"
            assert final.finished_at is not None
        else:  # the worker finished first: the cancel changed nothing
            assert final.state == cancelled[0] == JobState.DONE
        outcomes[final.state] = outcomes.get(final.state, 0) + 1
    print(f"{ITERATIONS} races: {outcomes}")
    assert outcomes.get(JobState.CANCELLED), "the race never cancelled a job: it tests nothing"


def test_only_allowed_transitions_happen(real_store):
    jobs = Jobs(real_store, ttl=600)
    job_id = jobs.create(SNAPSHOT, [1], chunk_size=1)
    assert jobs.mark_running(job_id) == JobState.RUNNING
    jobs.add(job_id, "failed", [1])
    assert jobs.finish_chunk(job_id, 0) == JobState.FAILED
    assert jobs.cancel(job_id).state == JobState.FAILED, "a finished job cannot be cancelled"
    assert jobs.mark_running(job_id) == JobState.FAILED, "nor run again"
    assert jobs.mark_running("no-such-job") is None


def test_each_job_keeps_its_quota_of_chunks_queued_and_a_redelivery_takes_nothing_twice(real_store):
    jobs = Jobs(real_store, ttl=600, queued_chunks=2)
    job_id = jobs.create(SNAPSHOT, list(range(10)), chunk_size=1)
    assert jobs.refill(job_id) == range(0, 2)
    assert jobs.refill(job_id) == range(2, 2), "two chunks queued already: nothing more"
    assert jobs.take_chunk(job_id, 0) == range(2, 3), "a chunk taken brings the next one"
    assert jobs.take_chunk(job_id, 0) == range(3, 3), "the same message delivered again brings none"
    assert jobs.take_chunk(job_id, 7) == range(3, 3), "nor a chunk sent again by a retry or a watchdog"
    urgent = jobs.create(SNAPSHOT, list(range(10)), chunk_size=1, priority=3)
    assert jobs.refill(urgent) == range(0, 6), "priority 3: three times the quota"
    assert jobs.status(urgent).priority == 3


def test_a_paused_job_parks_the_chunks_taken_and_resumes_with_them(real_store):
    jobs = Jobs(real_store, ttl=600, queued_chunks=2)
    job_id = jobs.create(SNAPSHOT, list(range(10)), chunk_size=1, sealed=False)  # still taking tasks
    jobs.refill(job_id)
    jobs.mark_running(job_id)
    status = jobs.pause(job_id, "paused by request")
    assert (status.state, status.message) == (JobState.PAUSED, "paused by request")
    assert jobs.take_chunk(job_id, 0) is None, "taken while paused: parked, not run"
    assert jobs.refill(job_id) == range(2, 2), "a paused job queues nothing"
    assert jobs.mark_running(job_id) == JobState.PAUSED, "a chunk starting does not unpause it"
    assert jobs.extend(job_id, [99], chunk_size=1), "a paused job still takes tasks (llm-backend batch feeds it)"

    state, chunks = jobs.resume(job_id, max_usd=5.0)
    assert (state, chunks) == (JobState.RUNNING, [0]), "the parked chunk again (chunk 1 is still queued)"
    status = jobs.status(job_id)
    assert (status.state, status.message, status.max_usd) == (JobState.RUNNING, None, 5.0)
    assert jobs.resume(job_id) == (JobState.RUNNING, []), "a job not paused: nothing changes"
    assert jobs.take_chunk(job_id, 0) == range(2, 3), "and on from where it stopped"


def test_pause_and_resume_only_from_their_states(real_store):
    jobs = Jobs(real_store, ttl=600)
    queued = jobs.create(SNAPSHOT, [1, 2], chunk_size=1)
    jobs.pause(queued, "later")
    assert jobs.resume(queued)[0] == JobState.QUEUED, "a job paused before any chunk ran goes back to queued"
    jobs.pause(queued, "later")
    assert jobs.cancel(queued).state == JobState.CANCELLED, "a paused job can be cancelled"
    assert jobs.resume(queued) == (JobState.CANCELLED, [])
    assert jobs.pause(queued, "again").state == JobState.CANCELLED
    assert jobs.resume("0" * 32) == (None, [])
    assert jobs.pause("0" * 32, "x") is None


def test_a_paused_job_whose_last_chunk_finishes_is_settled(real_store):
    jobs = Jobs(real_store, ttl=600)
    job_id = jobs.create(SNAPSHOT, [1], chunk_size=1)
    jobs.mark_running(job_id)
    jobs.pause(job_id, "paused by request")
    jobs.add(job_id, "done", [1])
    assert jobs.finish_chunk(job_id, 0) == JobState.DONE, "its calls in flight finished the job: nothing to resume"


def test_pause_racing_a_worker_taking_a_chunk_never_loses_it(real_store):
    jobs = Jobs(real_store, ttl=600, queued_chunks=1)
    outcomes: dict[str, int] = {}
    for _ in range(ITERATIONS):
        job_id = jobs.create(SNAPSHOT, [1, 2], chunk_size=1)
        jobs.refill(job_id)
        taken: list[range | None] = []

        def take(job_id: str = job_id, taken: list = taken) -> None:
            taken.append(jobs.take_chunk(job_id, 0))

        def pause(job_id: str = job_id) -> None:
            jobs.pause(job_id, "paused by request")

        race(take, pause)
        state, resent = jobs.resume(job_id)
        assert state == JobState.QUEUED
        if taken[0] is None:  # parked: resume sends it again (it fills the job's quota of one)
            assert resent == [0]
            outcomes["parked"] = outcomes.get("parked", 0) + 1
        else:  # it runs; its successor was queued before the pause, so nothing is sent again
            assert (taken[0], resent) == (range(1, 2), [])
            outcomes["ran"] = outcomes.get("ran", 0) + 1
    print(f"{ITERATIONS} races: {outcomes}")
    assert outcomes.get("parked"), "the race never parked a chunk: it tests nothing"


def test_a_job_pauses_before_a_call_would_take_it_past_its_budget(real_store):
    jobs = Jobs(real_store, ttl=600, prices={"m": (1_000_000.0, 0.0)})  # a dollar a prompt token
    job_id = jobs.create(SNAPSHOT, [1, 2, 3], chunk_size=1, max_usd=10.0)
    jobs.mark_running(job_id)
    jobs.admit_call(job_id)
    jobs.add_usage(job_id, TokenUsage(4, 0, 0))  # one call: $4
    jobs.admit_call(job_id)  # $4 + $4 <= $10
    jobs.add_usage(job_id, TokenUsage(4, 0, 0))  # two calls: $8
    with pytest.raises(JobPaused, match="budget reached: spent \\$8.0000 of \\$10.0000 after 2 LLM calls"):
        jobs.admit_call(job_id)  # $8 + $4 > $10
    status = jobs.status(job_id)
    assert status.state == JobState.PAUSED and "resume" in status.message
    with pytest.raises(JobPaused):
        jobs.admit_call(job_id)
    # Under $10 spent, yet a resume needs a higher budget: its first call would pause it again.
    assert (jobs.spent_past(job_id, 10.0), jobs.spent_past(job_id, 12.0)) == (8.0, None)
    jobs.resume(job_id, max_usd=100.0)
    jobs.admit_call(job_id)
    unpriced = jobs.create(SNAPSHOT.model_copy(update={"model": "unpriced"}), [1], chunk_size=1, max_usd=0.01)
    jobs.add_usage(unpriced, TokenUsage(10**6, 0, 0))
    jobs.admit_call(unpriced)  # a model without a price is not counted (as for PROJECT_DAILY_USD)


@pytest.mark.parametrize("lock", ["claim", "push lock"])
def test_a_former_owner_letting_go_never_drops_what_another_took_over_meanwhile(real_store, lock):
    """Owner A's hold lapses just as B takes it over while A lets go: A's release compares and deletes in one Lua
    step, so B's hold survives every race.  A read then a delete, put in its place, fails this test within a few
    runs of the loop: the release is timed to fall across the lapse."""
    ledger = Jobs(real_store, ttl=600).ledger("9", f"race-{lock}")
    if lock == "claim":
        key = real_store.key("ledger", "9", f"race-{lock}", "claim", "1")

        def take(owner):
            return ledger.claim([1], owner, 30).held == [1]

        claims = {}

        def hold_a():
            claims["a"] = ledger.claim([1], "a", 30)
            return claims["a"].held == [1]

        def let_go_a():
            claims["a"].release()
    else:
        key = real_store.key("ledger", "9", f"race-{lock}", "push-lock")

        def take(owner):
            return ledger.hold_push_lock(owner, 30)

        def hold_a():
            return take("a")

        def let_go_a():
            ledger.release_push_lock("a")

    def b_takes_over():
        while not take("b"):
            pass

    def let_go_after(seconds):
        time.sleep(seconds)
        let_go_a()

    for attempt in range(ITERATIONS):
        assert hold_a()
        real_store.redis.pexpire(key, 1)  # A's hold lapses in a millisecond; A lets go around that instant
        race(b_takes_over, functools.partial(let_go_after, attempt % 30 / 10_000))
        assert real_store.redis.get(key) == "b", "B's hold survived A letting go"
        real_store.redis.delete(key)
    print(f"{ITERATIONS} races of {lock}")


def test_a_job_keeps_its_latest_errors_up_to_job_errors_kept(real_store, make_settings):
    jobs = Services.build(make_settings(job_errors_kept=2), real_store).jobs
    job_id = jobs.create(SNAPSHOT, [1, 2, 3], chunk_size=3)
    for task_id in (1, 2, 3):
        jobs.record_error(job_id, task_id, f"task {task_id} failed")
    assert [error["task"] for error in jobs.status(job_id).errors] == [2, 3]
