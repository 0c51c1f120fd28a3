"""Retrieve Predictions on many tasks: answered at once, computed by the workers.

Label Studio sends every selected task in one /predict and gives up after 100 s, so a batch is
stored as a job, handed to Celery, and answered with ``{"results": []}`` (Label Studio then stores
nothing from the answer); the workers push the predictions back with the same model version.
"""

from __future__ import annotations

from shared.domain.types import Task
from shared.projects import PredictionContext


def batch_blocker(ctx: PredictionContext, tasks: list[Task]) -> str | None:
    """Why these tasks cannot go to the workers (which must push them back), or None."""
    if ctx.project is None:
        return "the request names no project"
    if ctx.access is None:
        return ctx.access_problem or "no Label Studio URL and key (set LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY)"
    if not all(isinstance(task.get("id"), int) for task in tasks):
        return "not every task has an integer id"
    return None
