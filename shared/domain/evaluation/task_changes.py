"""Which tasks a new prompt version changed, per control: the ones it fixed, broke, or answered differently.

Two versions compared are scored on the same tasks (``shared.evaluation``), so a task that disagrees in one
and not in the other changed sides: *fixed* (wrong before, right after) or *broken* (right before, wrong
after).  A task wrong in both whose answer differs is *changed*.  The full disagreement lists of both
versions are needed (a run keeps only the first ones), so this runs when they are scored; the first ``keep``
tasks of each kind are kept, broken ones first: a regression is what a team must see before switching to the
new prompt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shared.domain.evaluation.scorers import ControlScore, Disagreement
from shared.domain.evaluation.scoring import Evaluation

FIXED, BROKEN, CHANGED = "fixed", "broken", "changed"


@dataclass(frozen=True)
class TaskChange:
    """One task whose outcome changed: ``before`` and ``after`` are the two versions' answers (the expected
    one where that version was right) and their scores (None where it was right: only disagreements keep it)."""

    task_id: int
    kind: str
    expected: str | None
    before: str | None
    after: str | None
    before_score: float | None
    after_score: float | None


@dataclass
class ControlChanges:
    """How many tasks of one control were fixed, broken and changed, and the first of each kind (broken first)."""

    fixed: int = 0
    broken: int = 0
    changed: int = 0
    tasks: list[TaskChange] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlChanges:
        return cls(data["fixed"], data["broken"], data["changed"], [TaskChange(**task) for task in data["tasks"]])


def _control_changes(before: ControlScore, after: ControlScore, keep: int) -> ControlChanges:
    old: dict[int, Disagreement] = {detail.task_id: detail for detail in before.details}
    new: dict[int, Disagreement] = {detail.task_id: detail for detail in after.details}
    broken = [
        TaskChange(task, BROKEN, wrong.expected, wrong.expected, wrong.predicted, None, wrong.score)
        for task, wrong in new.items()
        if task not in old
    ]
    fixed = [
        TaskChange(task, FIXED, wrong.expected, wrong.predicted, wrong.expected, wrong.score, None)
        for task, wrong in old.items()
        if task not in new
    ]
    changed = [
        TaskChange(task, CHANGED, wrong.expected, wrong.predicted, new[task].predicted, wrong.score, new[task].score)
        for task, wrong in old.items()
        if task in new and new[task].predicted != wrong.predicted
    ]
    return ControlChanges(len(fixed), len(broken), len(changed), [*broken[:keep], *fixed[:keep], *changed[:keep]])


def task_changes(before: Evaluation, after: Evaluation, keep: int) -> dict[str, ControlChanges]:
    """Per control both versions scored, the tasks whose outcome changed from ``before`` to ``after``."""
    return {
        name: _control_changes(score, after.controls[name], keep)
        for name, score in before.controls.items()
        if name in after.controls
    }
