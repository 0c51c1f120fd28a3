"""Job state changes are atomic: a cancel racing a worker never comes back to life (real Redis)."""

from __future__ import annotations

import threading

from shared.adapters.jobs import Jobs, JobState
from shared.domain.types import JobSnapshot

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
