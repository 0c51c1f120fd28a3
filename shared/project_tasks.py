"""A Label Studio project as the commands and the evaluation API see it: its prediction context, the gateway
that reaches it, and which of its tasks a batch would predict.

``llm-backend batch`` and ``llm-backend estimate`` (and ``GET /estimate``) select tasks with the same
``pages_to_predict``, so an estimate counts the tasks the following batch sends (``llm-backend batch`` from a
sample of the first pages, scaled to the project's size; the job's status then has the exact count).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from shared.adapters.label_studio import LabelStudioGateway
from shared.domain.errors import ConfigError
from shared.domain.routing import no_prompt_message
from shared.domain.types import Task
from shared.projects import PredictionContext
from shared.services import Services

PAGE_SIZE = 500
SKIPPED_SAMPLE = 1000  # skipped tasks kept (a uniform sample) for calibrating estimates


@dataclass(frozen=True)
class OpenProject:
    id: int
    ctx: PredictionContext
    label_studio: LabelStudioGateway


def open_project(services: Services, project: int) -> OpenProject:
    """The project's context with the labeling config (and few-shot pool) Label Studio holds now; raises
    ConfigError when no Label Studio is known for it."""
    access, problem = services.projects.label_studio(services.store.load_setup(str(project)))
    if access is None:
        raise ConfigError(f"no Label Studio to read project {project} from: {problem}")
    label_studio = services.label_studio(access)
    # its few-shot pool read afresh: what this opens is about to start a job, or to estimate or score one
    ctx = services.projects.context(str(project), label_studio.label_config(project), None, pool_max_age=0)
    return OpenProject(project, ctx, label_studio)


def require_prompt(ctx: PredictionContext) -> str:
    """The project's prompt, for what predicts without being a way in of the routing decision (an estimate, an
    improvement); ConfigError with the routing's message when there is none."""
    if ctx.prompt is None:
        raise ConfigError(no_prompt_message(ctx.project, ctx.prompt_error))
    return ctx.prompt


@dataclass
class PageSelection:
    """Of one page of the project's tasks: ``tasks`` a batch would predict, ``skipped`` the others (labeled, or
    holding a prediction of the current version); ``total`` is the project's task count when it was read."""

    tasks: list[Task]
    skipped: list[Task]
    total: int

    @property
    def seen(self) -> int:
        return len(self.tasks) + len(self.skipped)


@dataclass
class TaskSelection:
    """``tasks`` a batch would predict, of ``seen``; ``skipped`` is a uniform sample (at most
    ``SKIPPED_SAMPLE``) of the others: labeled, or holding a prediction of the current version."""

    tasks: list[Task]
    seen: int
    skipped: list[Task] = field(default_factory=list)
    _skipped_seen: int = 0
    _sampler: random.Random = field(default_factory=lambda: random.Random(0))  # a reproducible reservoir sample

    def add(self, page: PageSelection) -> None:
        self.seen += page.seen
        self.tasks.extend(page.tasks)
        for task in page.skipped:
            self._skipped_seen += 1
            if len(self.skipped) < SKIPPED_SAMPLE:
                self.skipped.append(task)
            elif (slot := self._sampler.randrange(self._skipped_seen)) < SKIPPED_SAMPLE:
                self.skipped[slot] = task


def pages_to_predict(project: OpenProject, only_unlabeled: bool, page_size: int = PAGE_SIZE) -> Iterator[PageSelection]:
    """The project's tasks page by page, in Label Studio's order, split into those without a prediction of the
    current model version (and, with ``only_unlabeled``, without annotations) and the others.

    Which tasks of a page hold a prediction of the version is asked of Label Studio for that page's ids (a read
    or two per page), so the first page is ready without reading the whole project's predictions."""
    gateway, version = project.label_studio, project.ctx.model_version
    for page in gateway.task_pages(project.id, page_size=page_size):
        ids = [int(fields["id"]) for fields in page.tasks]
        predicted = gateway.predicted_among(project.id, ids, version) if ids else set()
        selected = PageSelection([], [], page.total)
        for fields in page.tasks:
            task: Task = {"id": fields["id"], "data": fields.get("data") or {}}
            labeled = fields.get("is_labeled") or fields.get("total_annotations")
            skip = (only_unlabeled and labeled) or int(fields["id"]) in predicted
            (selected.skipped if skip else selected.tasks).append(task)
        yield selected


def tasks_to_predict(project: OpenProject, only_unlabeled: bool) -> TaskSelection:
    """Every task of the project a batch would predict (``pages_to_predict``, all pages)."""
    selection = TaskSelection([], 0, _sampler=random.Random(project.id))
    for page in pages_to_predict(project, only_unlabeled):
        selection.add(page)
    return selection
