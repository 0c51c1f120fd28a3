"""Prometheus metrics for the whole deployment, kept in Redis.

Every process (gunicorn's workers, Celery workers on any machine) adds to the same counters and
histograms in Redis, so one scrape of ``/metrics`` on any API process shows everything, whatever
process served what.  ``prometheus_client`` does the exposition through a custom collector.
Updates are buffered in the process and written once a second; a metric that cannot be written
(Redis down) is dropped: metrics never fail a request nor slow it down.

Series are kept forever, so no label comes from request input as it is: an HTTP method is one of
``HTTP_METHODS``, a model one the operator configured (``known_models``) and a control's tag one of
``CONTROL_TYPES``, else ``other``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.adapters.jobs import Jobs
from shared.adapters.replies import text_dict
from shared.adapters.store import Store
from shared.domain.config import Settings, setting_default

log = logging.getLogger(__name__)

PREFIX = "llm_backend"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)

COUNTERS = {
    "http_requests": ("HTTP requests by route, method and status", ("route", "method", "status")),
    "llm_calls": ("LLM calls by provider, model and outcome", ("provider", "model", "outcome")),
    "llm_tokens": (
        "LLM tokens by provider, model and direction (in = prompt, out = completion, cached = the part of "
        "the prompt the provider served from its prefix cache)",
        ("provider", "model", "direction"),
    ),
    "llm_cache": ("LLM response cache lookups by result", ("result",)),
    "abstentions": (
        "Controls of predictions whose model declined to answer ('I cannot determine…', 'None of these fit', null "
        "for every control), by control tag and outcome: empty (no region) or none_choice (the config's own "
        "none/other choice)",
        ("control_type", "outcome"),
    ),
    "label_studio_push_reconciled": (
        "Predictions of pushes whose outcome was unknown, read back from Label Studio: landed, or sent again",
        ("result",),
    ),
}
HISTOGRAMS = {
    "interactive_seconds": ("Time to answer an annotator's interactive request", ()),
    "llm_seconds": ("Time of one LLM call, retries included", ("provider", "model")),
    "label_studio_push_seconds": (
        "Time of one import/predictions call to Label Studio, by outcome (ok, refused, unknown: a timeout, a lost "
        "connection or a 5xx, read back before anything is sent again)",
        ("outcome",),
    ),
}


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The control tags the backend fills: a control's tag as a label (the tag of any other counts as ``other``).
CONTROL_TYPES = frozenset({"Choices", "Taxonomy", "Rating", "Number", "Pairwise", "Labels", "ParagraphLabels"})
OTHER = "other"


def known_models(settings: Settings) -> frozenset[str]:
    """The models that get a label of their own: the operator's `OPENAI_MODEL` and those priced in `LLM_PRICES`
    (or the built-in table); a model a project names in `/setup` outside these counts as ``other``."""
    return frozenset({settings.openai_model, *settings.prices})


def bounded(value: str, known: frozenset[str]) -> str:
    """``value`` as a label when it is one of ``known``, else ``other``."""
    return value if value in known else OTHER


def _field(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True)


class Metrics:
    """Adds up in the process and writes to Redis once a second, in one round trip.

    A request or an LLM call then costs no Redis round trip for its metrics; at most the last second
    of a process that dies unflushed is lost.  ``flush`` writes at once (``/metrics`` calls it);
    ``close`` flushes and stops.
    """

    def __init__(self, store: Store, interval: float = 1.0) -> None:
        self.store = store
        self.interval = interval
        self._pending: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._flusher_pid: int | None = None
        self._closed = threading.Event()

    def count(self, name: str, amount: float = 1, /, **labels: str) -> None:
        self._add(name, _field(labels), amount)

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        field = _field(labels)
        bucket = next((str(bound) for bound in LATENCY_BUCKETS if seconds <= bound), "+Inf")
        self._add(name, f"{field}|{bucket}", 1)
        self._add(name, f"{field}|sum", seconds)

    def _add(self, name: str, field: str, amount: float) -> None:
        with self._lock:
            self._pending[(name, field)] = self._pending.get((name, field), 0.0) + amount
            if self._flusher_pid != os.getpid():  # one flusher per process, started after any fork
                self._flusher_pid = os.getpid()
                threading.Thread(target=self._flush_forever, daemon=True, name="metrics-flush").start()

    def _flush_forever(self) -> None:
        while not self._closed.wait(self.interval):
            self.flush()

    def close(self) -> None:
        """Write what is pending and stop the flusher: nothing counted before this is lost."""
        self._closed.set()
        self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            pipe = self.store.redis.pipeline(transaction=False)
            for (name, field), amount in pending.items():
                pipe.hincrbyfloat(self.store.key("metrics", name), field, amount)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("%d metric updates dropped: %s", len(pending), exc)


def mean_seconds(store: Store, name: str, **labels: str) -> float | None:
    """The mean of a histogram's observations with exactly these labels, from every process (None before any)."""
    series = _field(labels) + "|"
    count, total = 0.0, 0.0
    for field, value in text_dict(store.redis.hgetall(store.key("metrics", name))).items():
        if field.startswith(series):
            part = field[len(series) :]
            if part == "sum":
                total = float(value)
            else:
                count += float(value)
    return total / count if count else None


class RedisCollector(Collector):
    """Renders what every process wrote, plus gauges read at scrape time (jobs by state, queue depth)."""

    def __init__(
        self, store: Store, jobs: Jobs, queue_key: str, recent_jobs: int = setting_default("metrics_recent_jobs")
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.queue_key = queue_key
        self.recent_jobs = recent_jobs

    def collect(self) -> Iterator[Metric]:
        redis_ = self.store.redis
        for name, (doc, label_names) in COUNTERS.items():
            family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=label_names)
            for field, value in redis_.hgetall(self.store.key("metrics", name)).items():
                labels = json.loads(field)
                family.add_metric([labels.get(label, "") for label in label_names], float(value))
            yield family
        for name, (doc, label_names) in HISTOGRAMS.items():
            yield self._histogram(name, doc, label_names)
        yield self._jobs_by_state()
        depth = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Messages waiting in the batch queue", labels=["queue"])
        depth.add_metric(["batch"], redis_.llen(self.queue_key))
        yield depth
        yield from self._backlog()

    def _backlog(self) -> Iterator[Metric]:
        """What to scale the workers on (docs/operating.md): the tasks the LLM still has to do, from the job records
        (``Jobs.backlog``), and apart from them the predictions waiting for Label Studio, which more workers would
        not help."""
        backlog = self.jobs.backlog(self.recent_jobs)
        for name, doc, value, labels in (
            (
                "backlog_tasks",
                "Tasks of live jobs that no worker has started (not predicted, not failed, not in flight)",
                backlog.waiting,
                {"queue": "batch"},
            ),
            ("in_flight_tasks", "LLM calls the workers' windows have open now", backlog.in_flight, {"queue": "batch"}),
            (
                "predictions_waiting_for_label_studio",
                "Predictions of live jobs made and not in Label Studio yet (a slow or unreachable Label Studio)",
                backlog.for_label_studio,
                {},
            ),
        ):
            family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))
            family.add_metric(list(labels.values()), value)
            yield family

    def _histogram(self, name: str, doc: str, label_names: tuple[str, ...]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=label_names)
        series: dict[str, dict[str, float]] = {}
        for field, value in text_dict(self.store.redis.hgetall(self.store.key("metrics", name))).items():
            labels, part = field.rsplit("|", 1)
            series.setdefault(labels, {})[part] = float(value)
        for labels, parts in series.items():
            cumulative, buckets = 0.0, []
            for bound in (*map(str, LATENCY_BUCKETS), "+Inf"):
                cumulative += parts.get(bound, 0.0)
                buckets.append((bound, cumulative))
            values = json.loads(labels)
            family.add_metric([values.get(label, "") for label in label_names], buckets, parts.get("sum", 0.0))
        return family

    def _jobs_by_state(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(f"{PREFIX}_jobs", f"The last {self.recent_jobs} jobs by state", labels=["state"])
        for state, count in self.jobs.count_by_state(self.recent_jobs).items():
            family.add_metric([state.value], count)
        return family
