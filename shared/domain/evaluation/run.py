"""One evaluation as it is kept, listed and rendered: a project, one or two model versions, their figures.

A run scores one version (``llm-backend eval``) or two on the same tasks (``--compare``, the first being
"before").  A run that first predicts (``--predict``) waits in ``predicting`` for its batch job, remembering
which tasks it predicts, and is scored once the job has finished.  Disagreements are kept up to
``DISAGREEMENTS_KEPT`` per control (each with both answers and the prediction's score), with their full
count, and so are the tasks a comparison changed; the run keeps a text excerpt of each task it lists, so a
100,000-task project stays a small record.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from shared.domain.evaluation.calibration import DEFAULT_PRECISIONS
from shared.domain.evaluation.scoring import Comparison, Evaluation, compare
from shared.domain.evaluation.task_changes import ControlChanges, task_changes

DISAGREEMENTS_KEPT = 100


class RunState(enum.StrEnum):
    PREDICTING = "predicting"
    DONE = "done"
    FAILED = "failed"


@dataclass
class VersionScore:
    """One version's figures; ``disagreements`` counts, per control, every task where it disagrees (the
    evaluation lists the first ``DISAGREEMENTS_KEPT`` of them)."""

    version: str
    evaluation: Evaluation
    disagreements: dict[str, int]

    @classmethod
    def of(cls, version: str, evaluation: Evaluation, keep: int = DISAGREEMENTS_KEPT) -> VersionScore:
        counts = {name: len(score.disagreements) for name, score in evaluation.controls.items()}
        controls = {name: replace(score, details=score.details[:keep]) for name, score in evaluation.controls.items()}
        return cls(version, replace(evaluation, controls=controls), counts)

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "disagreement_counts": self.disagreements, **self.evaluation.as_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionScore:
        return cls(data["version"], Evaluation.from_dict(data), dict(data["disagreement_counts"]))

    def headline(self) -> dict[str, dict[str, float | None]]:
        """Each control's first metric (accuracy, exact-set accuracy, exact span F1, path accuracy, exact match)."""
        return {name: dict(list(score.metrics.items())[:1]) for name, score in self.evaluation.controls.items()}


@dataclass
class EvaluationRun:
    """``versions`` lists what is scored (before, after when comparing); ``task_ids`` the tasks of the run
    (None: every task of the project); ``predicted_version`` the version its job predicts; ``precisions`` the
    target precisions the calibration finds thresholds for.  Once scored, ``changes`` holds the tasks a
    comparison changed, per control, and ``excerpts`` the text of every task the run lists (by task id)."""

    id: str
    project: str
    created_at: float
    versions: list[str]
    state: RunState
    title: str = ""
    label_studio_url: str | None = None
    controls: list[str] | None = None
    task_ids: list[int] | None = None
    job_id: str | None = None
    predicted_version: str | None = None
    scores: list[VersionScore] = field(default_factory=list)
    skipped_controls: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    finished_at: float | None = None
    precisions: list[float] = field(default_factory=lambda: list(DEFAULT_PRECISIONS))
    changes: dict[str, ControlChanges] = field(default_factory=dict)
    excerpts: dict[str, str] = field(default_factory=dict)

    def keep_scores(
        self, scored: Sequence[tuple[str, Evaluation]], excerpts: Mapping[int, str], keep: int = DISAGREEMENTS_KEPT
    ) -> None:
        """Keep each version's figures, the tasks two versions changed, and the excerpts of the tasks listed."""
        self.scores = [VersionScore.of(version, evaluation, keep) for version, evaluation in scored]
        self.changes = task_changes(scored[0][1], scored[1][1], keep) if len(scored) == 2 else {}
        listed = [
            detail.task_id
            for version in self.scores
            for score in version.evaluation.controls.values()
            for detail in score.details
        ]
        listed += [change.task_id for changes in self.changes.values() for change in changes.tasks]
        self.excerpts = {str(task_id): excerpts[task_id] for task_id in listed if excerpts.get(task_id)}

    def excerpt(self, task_id: int) -> str:
        return self.excerpts.get(str(task_id), "")

    @property
    def comparison(self) -> Comparison | None:
        if len(self.scores) != 2:
            return None
        return compare(self.scores[0].evaluation, self.scores[1].evaluation)

    def as_dict(self) -> dict[str, Any]:
        comparison = self.comparison
        return {
            "id": self.id,
            "project": self.project,
            "title": self.title,
            "state": self.state.value,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "versions": list(self.versions),
            "label_studio_url": self.label_studio_url,
            "controls": self.controls,
            "task_ids": self.task_ids,
            "job": self.job_id,
            "predicted_version": self.predicted_version,
            "error": self.error,
            "skipped_controls": dict(self.skipped_controls),
            "scores": [score.as_dict() for score in self.scores],
            "comparison": comparison.as_dict() if comparison else None,
            "precisions": list(self.precisions),
            "changes": {name: changes.as_dict() for name, changes in self.changes.items()},
            "excerpts": dict(self.excerpts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationRun:
        """The inverse of ``as_dict`` (``comparison`` is derived, so it is not read back)."""
        return cls(
            id=data["id"],
            project=data["project"],
            title=data.get("title") or "",
            created_at=data["created_at"],
            versions=list(data["versions"]),
            state=RunState(data["state"]),
            label_studio_url=data.get("label_studio_url"),
            controls=data.get("controls"),
            task_ids=data.get("task_ids"),
            job_id=data.get("job"),
            predicted_version=data.get("predicted_version"),
            scores=[VersionScore.from_dict(score) for score in data.get("scores") or []],
            skipped_controls=dict(data.get("skipped_controls") or {}),
            error=data.get("error"),
            finished_at=data.get("finished_at"),
            precisions=list(data.get("precisions") or DEFAULT_PRECISIONS),
            changes={name: ControlChanges.from_dict(changes) for name, changes in (data.get("changes") or {}).items()},
            excerpts=dict(data.get("excerpts") or {}),
        )

    def summary(self) -> dict[str, Any]:
        """What a listing shows: the run without its per-label figures, with each version's coverage and
        headline metric per control."""
        return {
            "id": self.id,
            "project": self.project,
            "state": self.state.value,
            "created_at": self.created_at,
            "versions": list(self.versions),
            "job": self.job_id,
            "error": self.error,
            "scores": {
                score.version: {"coverage": asdict(score.evaluation.coverage), "controls": score.headline()}
                for score in self.scores
            },
        }
