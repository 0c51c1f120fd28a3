"""The objects every entry point works with, wired once: API, CLI and workers build them the same way.

Collaborators can be passed in (a store on fakeredis, Label Studio gateways pointed at a stand-in);
everything else gets its default from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from shared.adapters.batch_api import BatchApi
from shared.adapters.jobs import Jobs
from shared.adapters.label_studio import LabelStudioGateways
from shared.adapters.llm import LLM
from shared.adapters.metrics import Metrics
from shared.adapters.netguard import AddressPolicy
from shared.adapters.queue import make_celery
from shared.adapters.store import Store
from shared.batch_jobs import BatchJobs
from shared.domain.config import Settings
from shared.domain.labeling.spec import configure_spec_cache
from shared.few_shot import FewShotPools
from shared.opened_tasks import OpenedTasks
from shared.predictor import Predictor
from shared.projects import Projects
from shared.redaction import remember_settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    jobs: Jobs
    projects: Projects
    predictor: Predictor
    opened_tasks: OpenedTasks
    label_studio: LabelStudioGateways
    celery: Celery
    metrics: Metrics
    batch_jobs: BatchJobs

    @classmethod
    def build(
        cls, settings: Settings, store: Store | None = None, label_studio: LabelStudioGateways | None = None
    ) -> Services:
        remember_settings(settings)
        configure_spec_cache(settings.label_config_cache_bytes)
        store = store or Store.from_settings(settings)
        label_studio = label_studio or LabelStudioGateways(
            policy=AddressPolicy.from_settings(settings),
            timeout=settings.label_studio_timeout,
            url_bytes=settings.label_studio_url_bytes,
        )
        metrics = Metrics(store)
        jobs = Jobs.from_settings(settings, store)
        llm = LLM.from_settings(settings, store, metrics)
        predictor = Predictor(settings, store, jobs, llm, label_studio, metrics)
        projects = Projects(settings, store, FewShotPools(settings, store, label_studio))
        return cls(
            settings=settings,
            store=store,
            jobs=jobs,
            projects=projects,
            predictor=predictor,
            opened_tasks=OpenedTasks(jobs, predictor, settings.batch_claim_seconds, settings.opened_task_wait),
            label_studio=label_studio,
            celery=make_celery(settings),
            metrics=metrics,
            batch_jobs=BatchJobs(settings, projects, predictor, jobs, BatchApi(llm)),
        )

    def close(self) -> None:
        """Finish the LLM calls in flight and write the metrics still pending."""
        self.predictor.close()
        self.metrics.close()
