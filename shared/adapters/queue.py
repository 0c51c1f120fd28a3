"""The Celery application both sides share: the API sends to it, the workers consume from it.

Redis is broker and result store.  Every broker and result key carries ``REDIS_KEY_PREFIX``, so
deployments (and test runs) can share one Redis.  Messages carry only ids; task data, prompts and
secrets stay in Redis, out of the arguments that Flower shows.

**Sending a chunk, first or again** (``send_chunk``, the one way a chunk's message is sent).  A chunk's message
carries its attempt number (Celery's ``retries``; ``predict_chunk`` reads it as ``request.retries``), which counts
the chunk's runs that failed: the run that is attempt ``BATCH_MAX_ATTEMPTS - 1`` fails what is still open instead
of leaving it for another.  The rule:

- a run that ended with tasks open (a retryable LLM error, Label Studio away, claims held elsewhere) or with an
  error is a failed attempt: the chunk goes again as ``attempt + 1`` after ``backoff(attempt)``
  (``send_chunk_again`` with the run's ``retry_in``; Celery's ``Task.retry`` does the same for an exception);
- a chunk handed back by a worker that stops (the drain) failed nothing: it goes again at once, with the same
  attempt (``send_chunk_again`` without ``retry_in``);
- a message sent by someone who does not know the chunk's attempt goes at once as attempt 0: the job's first
  chunks and their refills (``dispatch_job``, a worker taking a chunk, ``resume``) and the watchdogs' rescues of a
  chunk whose worker is gone or whose job stalled (the chunk's runs are idempotent: the ledger makes every effect
  once, so a fresh count repeats no LLM call and no push).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from celery import Celery

from shared.adapters.redis_connection import tls_options
from shared.domain.config import Settings

DISPATCH_JOB = "llm_backend.dispatch_job"
PREDICT_CHUNK = "llm_backend.predict_chunk"
POLL_BATCHES = "llm_backend.poll_batches"  # a Batch API job's look at its provider batches (shared.batch_jobs)
BATCH_QUEUE = "batch"


def chunk_task_id(job_id: str, index: int) -> str:
    """Chunk messages have ids we can name again, to revoke them when a job is cancelled."""
    return f"{job_id}-{index}"


def send(celery: Celery, name: str, args: list[Any], countdown: float = 0.0, **options: Any) -> None:
    """Send a task's message, the one way every message is sent.  No task's result is ever read (progress lives in
    the job records), so the sender does not subscribe to the task's result channel, which Celery's Redis result
    backend otherwise does for each message it sends, until the sender lets go of its ``AsyncResult``."""
    celery.send_task(name, args=args, countdown=countdown, ignore_result=True, **options)


def send_chunk(celery: Celery, job_id: str, index: int, attempt: int = 0, countdown: float = 0.0) -> None:
    """Send a chunk's message: run ``attempt`` (the rule above), after ``countdown`` seconds."""
    send(celery, PREDICT_CHUNK, [job_id, index], countdown, task_id=chunk_task_id(job_id, index), retries=attempt)


def send_chunks(celery: Celery, job_id: str, indices: Iterable[int]) -> None:
    """Send chunks whose attempt the sender does not know (first sends, refills, rescues): attempt 0, now."""
    for index in indices:
        send_chunk(celery, job_id, index)


def send_chunk_again(celery: Celery, job_id: str, index: int, attempt: int, retry_in: float | None) -> None:
    """Send again a chunk whose run ``attempt`` returned already: after ``retry_in`` as the next attempt when the run
    left tasks open (a failed attempt), or at once with the same attempt when it was handed back (``retry_in`` None:
    its worker stops, nothing failed)."""
    if retry_in is None:
        send_chunk(celery, job_id, index, attempt)
    else:
        send_chunk(celery, job_id, index, attempt + 1, retry_in)


def chunk_of(task_id: str) -> tuple[str, int]:
    """The (job id, chunk index) a chunk message's id names."""
    job_id, index = task_id.rsplit("-", 1)
    return job_id, int(index)


def worker_identity(node: str, nonce: str) -> str:
    """Who a worker is for recovery: its Celery node name and a nonce of its start, so two workers given the same
    name (one host, no ``-n``) are told apart, and one killed is found gone while its namesake beats on."""
    return f"{node}~{nonce}"


def holder_name(node: str, pid: int) -> str:
    """Who holds a chunk whose message was taken: a worker node's process (``node#pid``)."""
    return f"{node}#{pid}"


def holder_parts(holder: str) -> tuple[str, int | None]:
    """(node, process id) of a holder; a holder recorded when the node took the message has no process id."""
    node, _, pid = holder.partition("#")
    return node, int(pid) if pid else None


def queue_key(settings: Settings) -> str:
    """The Redis list holding the batch queue (kombu prefixes it like every broker key)."""
    return f"{settings.redis_key_prefix}:celery:{BATCH_QUEUE}"


def make_celery(settings: Settings) -> Celery:
    prefix = f"{settings.redis_key_prefix}:celery:"  # kept in step with queue_key()
    visibility = settings.broker_visibility_timeout
    app = Celery("llm_backend", broker=settings.redis_url, backend=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_default_queue=BATCH_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.chunk_time_limit,
        task_time_limit=settings.chunk_time_limit + 60,
        task_ignore_result=True,  # progress lives in the job records (shared/adapters/jobs.py)
        result_expires=settings.job_ttl,
        worker_send_task_events=True,
        worker_hijack_root_logger=False,  # our handler (text or JSON, with job ids) serves Celery's loggers too
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "global_keyprefix": prefix,
            # A message taken by a worker that died comes back after this many seconds.
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1, min(10, visibility // 4)),
            "unacked_restore_throttle": 1,
            # A silent Redis would otherwise hold a publish, or a warm shutdown, forever (kombu's redis transport).
            "socket_timeout": settings.redis_socket_timeout,
            "socket_connect_timeout": settings.redis_socket_timeout,
            "socket_keepalive": True,
        },
        result_backend_transport_options={"global_keyprefix": prefix},
        redis_socket_timeout=settings.redis_socket_timeout,
        redis_socket_connect_timeout=settings.redis_socket_timeout,
        redis_socket_keepalive=True,
    )
    if tls := tls_options(settings):  # a rediss:// URL: the broker, the result backend and Flower use TLS alike
        app.conf.update(broker_use_ssl=tls, redis_backend_use_ssl=tls)
    return app


def publish_through_outages(app: Celery, settings: Settings) -> None:
    """Make ``app`` try a publish again every second for ``BROKER_OUTAGE_SECONDS`` while the broker is away, rather
    than kombu's default three tries within a second.  For the workers: Celery drops a task's message when its
    retry cannot be published (``Task.retry`` raises ``Reject(requeue=False)``), and a chunk lost so would
    otherwise wait for the watchdog's ``JOB_STALL_SECONDS`` (20 minutes by default) after a Redis restart."""
    app.conf.task_publish_retry_policy = {
        "max_retries": math.ceil(settings.broker_outage_seconds),
        "interval_start": 0,
        "interval_step": 1,
        "interval_max": 1,
    }


def live_worker_slots(app: Celery, timeout: float = 1.0) -> int:
    """How many chunks the live workers run at once: the sum of their pool sizes (0 when none answers).

    Workers answer a broadcast on the broker within ``timeout`` seconds; a broker that cannot be reached
    counts as no worker.
    """
    from kombu.exceptions import OperationalError

    try:
        stats = app.control.inspect(timeout=timeout).stats() or {}
    except OperationalError:
        return 0
    return sum(int((worker.get("pool") or {}).get("max-concurrency") or 1) for worker in stats.values())
