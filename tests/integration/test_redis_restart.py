"""A Redis with a password and AOF, restarted under a running batch: the job still completes, once."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from kombu.exceptions import OperationalError

from shared.adapters.queue import make_celery, publish_through_outages, queue_key, send_chunk
from tests.integration.own_redis import PASSWORD, job_on_own_redis, wait_for
from tests.integration.test_recovery import DEFAULTS

pytestmark = pytest.mark.fault_recovery


@pytest.mark.timeout(300)
@pytest.mark.parametrize("timeouts", [{}, DEFAULTS], ids=["short-timeouts", "defaults"])
def test_batch_survives_a_redis_restart(own_redis, llm_server, fake_llm, tmp_path, timeouts):
    """Through `llm-backend up`, which restarts a worker that exits (as compose's restart policy does):
    a Celery worker may exit when its broker goes away mid-task."""
    fake_llm.reply = lambda messages, index: "Sarcastic"
    fake_llm.delay = 0.05
    settings = {
        "BATCH_CHUNK_SIZE": "20",
        "LLM_CONCURRENCY": "4",
        "BATCH_RETRY_MAX_DELAY": "3",
        "JOB_STALL_SECONDS": "15",
    } | timeouts
    with job_on_own_redis(own_redis, llm_server.url, tmp_path, 51, **settings) as job:
        assert "(embedded" not in job.up.log, "the password-protected Redis at REDIS_URL is used"
        wait_for(lambda: job.status()["pushed"] >= 40, 60, job.up)
        own_redis.kill()
        time.sleep(2)
        own_redis.start()

        final = wait_for(lambda: (s := job.status())["state"] in ("done", "failed", "partial") and s, 180, job.up)
        assert (final["state"], final["pushed"]) == ("done", 200), final
        by_task = job.label_studio.predictions_by_task()
        assert sorted(by_task) == list(range(200))
        assert {task: len(found) for task, found in by_task.items() if len(found) > 1} == {}
        assert PASSWORD not in job.up.log


def test_a_workers_message_waits_out_a_redis_restart_and_the_apis_does_not(own_redis, make_settings):
    """A chunk's retry sent while Redis restarts: Celery drops the chunk's message when its retry cannot be sent,
    so a worker tries for BROKER_OUTAGE_SECONDS (the default) instead of kombu's three tries within a second; the
    API answers at once."""
    settings = make_settings(redis_url=own_redis.url, redis_key_prefix="outage")
    workers_app, apis_app = make_celery(settings), make_celery(settings)
    publish_through_outages(workers_app, settings)  # what worker/app.py does to its application
    send_chunk(workers_app, "job", 0)  # connected, as a worker is when its task fails
    send_chunk(apis_app, "job", 0)

    own_redis.kill()
    with pytest.raises(OperationalError):
        send_chunk(apis_app, "job", 1)
    restart = threading.Timer(3, own_redis.start)
    restart.start()
    try:
        send_chunk(workers_app, "job", 2)
    finally:
        restart.join()

    client = redis.Redis.from_url(own_redis.url)
    assert len(client.lrange(queue_key(settings), 0, -1)) == 3, "the worker's message sent meanwhile is queued"
    send_chunk(apis_app, "job", 3)
    assert client.pubsub_channels() == [], "no sender waits on a result channel: no result is ever read"
