"""The shapes that cross module boundaries: a task as Label Studio sends it, a prediction as it stores
it, and the snapshot a batch job keeps of its request."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict


class Task(TypedDict):
    """A Label Studio task: its id (absent in some hand-made requests), its data fields and, in the tasks
    Label Studio sends to ``/predict``, its project's id (other keys it sends are not read)."""

    id: NotRequired[int | None]
    data: dict[str, Any]
    project: NotRequired[int | None]


class Prediction(TypedDict):
    """One task's prediction, as Label Studio stores it (``/predict`` answers and bulk imports)."""

    result: list[dict[str, Any]]
    score: float
    model_version: str


class JobSnapshot(BaseModel):
    """What a batch job keeps of its request, so later prompt or config changes do not alter it.

    Keys and tokens are not part of it: how to reach Label Studio is read afresh when a chunk runs.
    """

    model_config = ConfigDict(frozen=True)

    project: str | None
    label_config: str
    extra_params: dict[str, Any]
    model_version: str
    model: str
    prompt: str | None
    prompt_error: str | None
