"""The facts of a prediction context, for the one routing decision (``shared.domain.routing``, its table)."""

from __future__ import annotations

from collections.abc import Sequence

from shared.domain.routing import NO_LABEL_STUDIO_URL_AND_KEY, Decision, Facts, WayIn, decide
from shared.domain.types import Task
from shared.projects import PredictionContext


def route(
    ctx: PredictionContext, way_in: WayIn, tasks: Sequence[Task] | None = None, batch_min_tasks: int = 0
) -> Decision:
    """Answer now, queue a job, or refuse, for ``tasks`` of this context coming in ``way_in``.  ``tasks`` None: the
    project's own tasks as Label Studio lists them (the commands, a job), whose ids are Label Studio's;
    ``batch_min_tasks`` is ``BATCH_MIN_TASKS``, for ``/predict``."""
    return decide(
        Facts(
            way_in=way_in,
            project=ctx.project,
            has_prompt=ctx.prompt is not None,
            label_studio_problem=None if ctx.access else ctx.access_problem or NO_LABEL_STUDIO_URL_AND_KEY,
            tasks=len(tasks) if tasks is not None else 0,
            integer_ids=tasks is None or all(isinstance(task.get("id"), int) for task in tasks),
            interactive=ctx.interactive,
            context_prompt=ctx.context_prompt,
            prompt_error=ctx.prompt_error,
            batch_min_tasks=batch_min_tasks,
        )
    )
