"""Jobs whose chunk messages were lost get them sent again (real Redis as broker)."""

import json
import time

import redis

from shared.adapters.jobs import Jobs
from shared.adapters.queue import POLL_BATCHES, chunk_of, make_celery, queue_key
from shared.domain.types import JobSnapshot
from tests.conftest import real_redis_url
from worker.watchdog import rescue_orphaned_chunks, rescue_overdue_polls, rescue_stalled_jobs

SNAPSHOT = JobSnapshot(
    project="1", label_config="<View/>", extra_params={}, model_version="v", model="m", prompt="p", prompt_error=None
)


def chunks_in(queue: list[bytes]) -> list[int]:
    """The chunk indices of the chunk messages in the broker's list (their ids name them)."""
    return sorted(chunk_of(json.loads(message)["headers"]["id"])[1] for message in queue)


def test_a_stalled_job_gets_its_unfinished_chunks_again_once(make_settings, real_store, redis_prefix):
    settings = make_settings(redis_key_prefix=redis_prefix)
    celery = make_celery(settings)
    jobs = Jobs(real_store, settings.job_ttl)
    stalled = jobs.create(SNAPSHOT, list(range(35)), 10)
    fresh = jobs.create(SNAPSHOT, list(range(5)), 10)
    finished = jobs.create(SNAPSHOT, [1], 10)
    assert jobs.refill(stalled) == range(0, 2), "JOB_QUEUED_CHUNKS (2) of its 4 chunks queued"
    jobs.finish_chunk(stalled, 1)
    jobs.finish_chunk(finished, 0)
    for job_id in (stalled, finished):
        real_store.redis.hset(real_store.key("job", job_id), "progress_at", 0)
    broker = redis.Redis.from_url(real_redis_url())  # the queued messages were lost: nothing would refill the job

    assert rescue_stalled_jobs(jobs, celery, stall_seconds=60) == [stalled]
    queue = broker.lrange(queue_key(settings), 0, -1)
    assert chunks_in(queue) == [0, 2], "chunk 0 again, chunk 2 in finished chunk 1's place; chunk 3 waits its turn"
    assert rescue_stalled_jobs(jobs, celery, stall_seconds=60) == [], "it counts as progress, and is locked"
    assert jobs.status(fresh).state == "queued"


def test_chunks_held_by_a_worker_that_stopped_beating_are_sent_again_once(make_settings, real_store, redis_prefix):
    settings = make_settings(redis_key_prefix=redis_prefix)
    celery = make_celery(settings)
    jobs = Jobs(real_store, settings.job_ttl)
    job_id = jobs.create(
        JobSnapshot(
            project="1",
            label_config="<View/>",
            extra_params={},
            model_version="v",
            model="m",
            prompt="p",
            prompt_error=None,
        ),
        list(range(30)),
        10,
    )
    jobs.beat("alive@host", 30)
    jobs.hold_chunk(job_id, 0, "dead@host")  # never beat: SIGKILLed before (or while) it ran the chunk
    jobs.hold_chunk(job_id, 1, "alive@host")
    jobs.hold_chunk(job_id, 2, "dead@host")
    jobs.finish_chunk(job_id, 2)  # finished before its worker died: nothing to rescue

    assert rescue_orphaned_chunks(jobs, celery, claim_seconds=30) == [(job_id, 0)]
    queue = redis.Redis.from_url(real_redis_url()).lrange(queue_key(settings), 0, -1)
    assert len(queue) == 1
    assert rescue_orphaned_chunks(jobs, celery, claim_seconds=30) == [], "sent once; the next taker holds it"


def test_an_overdue_batch_api_poll_is_sent_again_once_and_only_the_current_poll_goes_on(
    make_settings, real_store, redis_prefix
):
    settings = make_settings(redis_key_prefix=redis_prefix)
    celery = make_celery(settings)
    jobs = Jobs(real_store, settings.job_ttl)
    overdue, waiting = (jobs.create(SNAPSHOT, [1], 10) for _ in range(2))
    jobs.set_batch_phase(overdue, "polling", poll_due=time.time() - 60)  # its countdown message died with a worker
    jobs.set_batch_phase(waiting, "polling", poll_due=time.time() + 60)
    real_store.redis.hset(real_store.key("job", overdue), "progress_at", 0)

    assert rescue_overdue_polls(jobs, celery, grace=30) == [overdue]
    [message] = redis.Redis.from_url(real_redis_url()).lrange(queue_key(settings), 0, -1)
    assert json.loads(message)["headers"]["task"] == POLL_BATCHES
    assert rescue_overdue_polls(jobs, celery, grace=30) == [], "one rescuer per period"
    assert rescue_stalled_jobs(jobs, celery, stall_seconds=60) == [], "a job waiting for its batches sends no chunks"

    assert jobs.take_poll(overdue, 0, due_in=10) is True, "the rescued poll (seq 0) goes on"
    assert jobs.take_poll(overdue, 0, due_in=10) is False, "the lost one, come back late, is dropped"
    assert jobs.poll_seq(overdue) == 1 and jobs.overdue_polls(grace=30) == []
