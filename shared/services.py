"""The objects every entry point works with, wired once: API, CLI and workers build them the same way."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from shared.adapters.jobs import Jobs
from shared.adapters.llm import LLM
from shared.adapters.metrics import Metrics
from shared.adapters.queue import make_celery
from shared.adapters.store import Store
from shared.domain.config import Settings
from shared.predictor import Predictor


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    predictor: Predictor
    jobs: Jobs
    celery: Celery
    metrics: Metrics

    @classmethod
    def build(cls, settings: Settings, store: Store | None = None) -> Services:
        store = store or Store.from_url(settings.redis_url, settings.redis_key_prefix)
        metrics = Metrics(store)
        return cls(
            settings=settings,
            store=store,
            predictor=Predictor(settings, store, LLM.from_settings(settings, store, metrics)),
            jobs=Jobs(store, settings.job_ttl, settings.prices),
            celery=make_celery(settings),
            metrics=metrics,
        )
