"""A Label Studio project as the commands and the evaluation API see it: its prediction context, the gateway
that reaches it, and which of its tasks a batch would predict.

``llm-backend batch`` and ``llm-backend estimate`` (and ``GET /estimate``) select tasks with the same
``tasks_to_predict``, so an estimate counts exactly the tasks the following batch sends.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from shared.adapters.label_studio import LabelStudioGateway
from shared.domain.errors import ConfigError
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
    """The project's context with the labeling config Label Studio holds now; raises ConfigError when no
    Label Studio is known for it."""
    access, problem = services.projects.label_studio(services.store.load_setup(str(project)))
    if access is None:
        raise ConfigError(f"no Label Studio to read project {project} from: {problem}")
    label_studio = services.label_studio(access)
    ctx = services.projects.context(str(project), label_studio.label_config(project), None)
    return OpenProject(project, ctx, label_studio)


def require_prompt(ctx: PredictionContext) -> str:
    if ctx.prompt is None:
        raise ConfigError(
            f"project {ctx.project} has no prompt yet ({ctx.prompt_error or 'none stored'}): submit one in the "
            "prompt TextArea in Label Studio, or set DEFAULT_PROMPT"
        )
    return ctx.prompt


@dataclass
class TaskSelection:
    """``tasks`` a batch would predict, of ``seen``; ``skipped`` is a uniform sample (at most
    ``SKIPPED_SAMPLE``) of the others: labeled, or holding a prediction of the current version."""

    tasks: list[Task]
    seen: int
    skipped: list[Task] = field(default_factory=list)


def tasks_to_predict(project: OpenProject, only_unlabeled: bool) -> TaskSelection:
    """The tasks without a prediction of the current model version (and, with ``only_unlabeled``, without
    annotations), in Label Studio's order."""
    predicted = project.label_studio.predicted_tasks(project.id, project.ctx.model_version)
    selection = TaskSelection([], 0)
    sampler = random.Random(project.id)  # a reproducible reservoir sample
    skipped = 0
    for fields in project.label_studio.tasks(project.id, page_size=PAGE_SIZE):
        selection.seen += 1
        task: Task = {"id": fields["id"], "data": fields.get("data") or {}}
        labeled = fields.get("is_labeled") or fields.get("total_annotations")
        if (only_unlabeled and labeled) or fields["id"] in predicted:
            skipped += 1
            if len(selection.skipped) < SKIPPED_SAMPLE:
                selection.skipped.append(task)
            elif (slot := sampler.randrange(skipped)) < SKIPPED_SAMPLE:
                selection.skipped[slot] = task
            continue
        selection.tasks.append(task)
    return selection
