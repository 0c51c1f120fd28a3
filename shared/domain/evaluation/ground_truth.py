"""Which of a task's annotations is the ground truth a prompt is scored against.

Label Studio lets a reviewer mark one annotation as ``ground_truth``; that one wins.  Without a mark
the latest annotation that was not cancelled (skipped) stands for what the team believes, since
later annotations usually correct earlier ones.  A task with neither is not scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class GroundTruthTask:
    """A task with its ground truth: its id, its data and the chosen annotation's regions (what ``improve``
    predicts and scores again, and what few-shot examples are made of)."""

    id: int
    data: dict[str, Any]
    truth: list[dict[str, Any]]


def _when(annotation: dict[str, Any]) -> datetime:
    for key in ("updated_at", "created_at"):
        stamp = annotation.get(key)
        if stamp:
            try:
                moment = datetime.fromisoformat(stamp)
            except (TypeError, ValueError):
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


def _recency(annotation: dict[str, Any]) -> tuple[datetime, int]:
    """Latest first by time; the higher id breaks ties (ids grow with creation)."""
    identifier = annotation.get("id")
    return _when(annotation), identifier if isinstance(identifier, int) else 0


def select_ground_truth(annotations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The annotation to score against: the latest one marked ``ground_truth``, else the latest kept one."""
    kept = [annotation for annotation in annotations if not annotation.get("was_cancelled")]
    marked = [annotation for annotation in kept if annotation.get("ground_truth")]
    return max(marked or kept, key=_recency, default=None)


def ground_truth_result(annotations: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The regions of the chosen annotation, or None when the task has nothing to score against."""
    chosen = select_ground_truth(annotations)
    return None if chosen is None else list(chosen.get("result") or [])
