"""The shapes that cross module boundaries: a task as Label Studio sends it, a prediction as it stores
it, and the snapshot a batch job keeps of its request."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, NotRequired, TypeAlias, TypedDict

from pydantic import BaseModel, ConfigDict

TaskId: TypeAlias = int | str
"""A task's id as the backend passes it around: an int as Label Studio sends it (tasks, a job's chunks), a string as
Redis gives back the ledger's sets and hashes (the outbox, the tasks on their way).  Redis keys and members are
written ``str(task_id)``, so either form names the same task."""


class Task(TypedDict):
    """A Label Studio task: its id (absent in some hand-made requests), its data fields and, in the tasks
    Label Studio sends to ``/predict``, its project's id (other keys it sends are not read)."""

    id: NotRequired[int | None]
    data: dict[str, Any]
    project: NotRequired[int | None]


def task_ids(tasks: list[Task]) -> list[int]:
    """What a batch job keeps of its tasks: their integer ids.  Their data stays behind: the workers predict
    what Label Studio holds for those ids."""
    return [task_id for task in tasks if isinstance(task_id := task.get("id"), int)]


def data_digest(data: Mapping[str, Any]) -> str:
    """What a prediction was computed from, in 32 hex characters: a prediction kept for a task is handed over,
    reused or pushed only for data with the same digest, so a caller cannot get a task's prediction without
    already holding its data, nor have its own data's prediction pushed for a task of Label Studio's."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


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
    few_shot_pool: str | None = None  # the key of the few-shot example pool the job started with
