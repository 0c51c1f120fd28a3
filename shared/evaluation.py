"""Scoring a prompt against the team's ground truth in Label Studio: ``llm-backend eval`` and ``/evaluations``.

The ground truth of a task is its annotation marked ``ground_truth``, else its latest annotation that was
not cancelled (``shared.domain.evaluation.ground_truth``); the predictions scored are those of one model version that
Label Studio holds (the project's current version by default).  ``predict`` first runs the current prompt
on the annotated tasks that lack its predictions, as a normal batch job (cache, rate limit and exactly-once
push apply); the run waits in ``predicting`` and is scored when the job has finished (``finish``).
Comparing two versions scores both on the tasks that hold a prediction of each, so the changes are the
prompt's, not the tasks'.

By default every scorable control is scored except the prompt TextArea and the controls no ground truth
answers (an output TextArea the team never fills would only count as disagreement); ``controls`` names
them instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.adapters.evaluations import EvaluationStore
from shared.dispatch import start_job
from shared.domain.errors import InvalidRequest, NotFound
from shared.domain.evaluation.calibration import DEFAULT_PRECISIONS
from shared.domain.evaluation.excerpts import task_excerpt
from shared.domain.evaluation.run import EvaluationRun, RunState
from shared.domain.evaluation.scorers import SCORERS
from shared.domain.evaluation.scoring import TaskToScore, score
from shared.domain.labeling.spec import LabelingSpec
from shared.domain.routing import WayIn
from shared.project_tasks import PAGE_SIZE, OpenProject, open_project
from shared.routing import route
from shared.services import Services


@dataclass(frozen=True)
class EvaluationRequest:
    """``compare`` names two versions (before, after), or one to compare with the current version;
    ``limit`` keeps the first tasks (by id) that have a ground truth; ``precisions`` are the target precisions
    the calibration finds a review threshold for."""

    project: int
    version: str | None = None
    compare: tuple[str, ...] = ()
    predict: bool = False
    limit: int | None = None
    controls: tuple[str, ...] | None = None
    precisions: tuple[float, ...] = DEFAULT_PRECISIONS

    def __post_init__(self) -> None:
        if self.version and self.compare:
            raise InvalidRequest("give either a version or versions to compare, not both")
        if len(self.compare) > 2:
            raise InvalidRequest("compare takes two versions (before, after), or one to compare with the current")
        if self.limit is not None and self.limit < 1:
            raise InvalidRequest("limit must be at least 1")
        if self.predict and self.version:
            raise InvalidRequest("predict scores the current version: leave out the version")
        for target in self.precisions:
            if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target <= 1:
                raise InvalidRequest(f"a target precision is a number above 0 and at most 1 (0.95), got {target!r}")

    def versions(self, current: str) -> list[str]:
        if self.compare:
            return list(self.compare) if len(self.compare) == 2 else [self.compare[0], current]
        return [self.version or current]


@dataclass(frozen=True)
class _TaskRecord:
    """What a run needs of one task: its ground truth and its latest prediction of each version."""

    id: int
    truth: list[dict[str, Any]] | None
    predictions: dict[str, list[dict[str, Any]]]
    scores: dict[str, float | None]
    excerpt: str


def _latest_by_version(predictions: list[dict[str, Any]], versions: set[str]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for prediction in predictions or []:
        version = prediction.get("model_version")
        if version in versions and (version not in latest or prediction.get("id", 0) > latest[version].get("id", 0)):
            latest[version] = prediction
    return latest


def _score_of(prediction: dict[str, Any]) -> float | None:
    value = prediction.get("score")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _record(
    task: dict[str, Any], truth: list[dict[str, Any]] | None, versions: set[str], spec: LabelingSpec
) -> _TaskRecord:
    """What scoring needs of a task: for one with a ground truth, its predictions of the versions scored, their
    scores and an excerpt of its text; of the others, the id only.  Never the task's data: a job started to
    predict the missing ones reads it from Label Studio itself."""
    if truth is None:
        return _TaskRecord(id=task["id"], truth=None, predictions={}, scores={}, excerpt="")
    latest = _latest_by_version(task.get("predictions") or [], versions)
    return _TaskRecord(
        id=task["id"],
        truth=truth,
        predictions={version: list(prediction.get("result") or []) for version, prediction in latest.items()},
        scores={version: _score_of(prediction) for version, prediction in latest.items()},
        excerpt=task_excerpt(spec, task.get("data") or {}),
    )


def controls_to_score(
    spec: LabelingSpec, truths: Iterable[list[dict[str, Any]] | None], requested: list[str] | None
) -> tuple[list[str], dict[str, str]]:
    """The controls to score (those ``requested``, else every scorable control some ground truth answers, but
    the prompt's) and, for the others, why not."""
    if requested is not None:
        return list(requested), {}
    answered = {region.get("from_name") for truth in truths for region in truth or []}
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    for control in spec.interface.controls:
        if control.name == spec.prompt.name:
            skipped[control.name] = "it holds the prompt"
        elif control.tag not in SCORERS:
            skipped[control.name] = f"a {control.tag} is not scored"
        elif control.name not in answered:
            skipped[control.name] = "no ground truth answers it"
        else:
            chosen.append(control.name)
    return chosen, skipped


class Evaluations:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.runs = EvaluationStore(services.store)

    def start(self, request: EvaluationRequest) -> EvaluationRun:
        """Score now, or (with ``predict``) start the job that predicts first and return the waiting run."""
        project = open_project(self.services, request.project)
        ctx = project.ctx
        if request.predict:
            route(ctx, WayIn.EVALUATION).raise_if_refused()
        run = EvaluationRun(
            id=uuid.uuid4().hex,
            project=str(project.id),
            created_at=time.time(),
            versions=request.versions(ctx.model_version),
            state=RunState.PREDICTING,
            title=project.label_studio.title(project.id),
            label_studio_url=project.label_studio.access.url,
            controls=list(request.controls) if request.controls is not None else None,
            precisions=[float(target) for target in request.precisions],
        )
        records = self._records(project, run.versions + [ctx.model_version])
        if request.limit is not None:
            records = [record for record in records if record.truth is not None][: request.limit]
            run.task_ids = [record.id for record in records]
        if request.predict:
            missing = [r for r in records if r.truth is not None and ctx.model_version not in r.predictions]
            if missing:
                run.job_id = start_job(self.services, ctx, [r.id for r in missing])
                run.predicted_version = ctx.model_version
                self.runs.save(run)
                return run
        return self._score(run, project, records, failed=set())

    def get(self, run_id: str) -> EvaluationRun:
        """A run as stored (``finish`` scores one that waits for its job)."""
        run = self.runs.get(run_id)
        if run is None:
            raise NotFound(f"no evaluation {run_id}")
        return run

    def finish(self, run: EvaluationRun) -> EvaluationRun:
        """Score a waiting run whose job has finished (failed tasks count as such); other runs stay as they are."""
        if run.state != RunState.PREDICTING or run.job_id is None:
            return run
        status = self.services.jobs.status(run.job_id)
        if status is None:
            run.state, run.error, run.finished_at = RunState.FAILED, f"job {run.job_id} expired", time.time()
            self.runs.save(run)
            return run
        if not status.state.finished:
            return run
        project = open_project(self.services, int(run.project))
        records = self._records(project, run.versions)
        if run.task_ids is not None:
            wanted = set(run.task_ids)
            records = [record for record in records if record.id in wanted]
        ids = [record.id for record in records]
        flags = self.services.jobs.members(run.job_id, "failed", ids)
        failed = {task_id for task_id, flag in zip(ids, flags, strict=True) if flag}
        return self._score(run, project, records, failed)

    def recent(self, project: int, limit: int = 20) -> list[EvaluationRun]:
        return self.runs.recent(str(project), limit)

    def _records(self, project: OpenProject, versions: list[str]) -> list[_TaskRecord]:
        """The project's tasks as Label Studio pages them, each reduced to what scoring needs as it arrives (see
        ``_record``).  A run holds no more of the project than that, however large its tasks."""
        wanted = set(versions)
        records = [
            _record(task, truth, wanted, project.ctx.spec)
            for task, truth in project.label_studio.annotated_tasks(project.id, page_size=PAGE_SIZE)
        ]
        return sorted(records, key=lambda record: record.id)

    def _score(
        self, run: EvaluationRun, project: OpenProject, records: list[_TaskRecord], failed: set[int]
    ) -> EvaluationRun:
        truths = [record.truth for record in records]
        controls, run.skipped_controls = controls_to_score(project.ctx.spec, truths, run.controls)
        comparing = len(run.versions) > 1
        scored = []
        for version in run.versions:
            tasks = [
                TaskToScore(
                    task_id=record.id,
                    ground_truth=record.truth,
                    prediction=None
                    if comparing and not all(v in record.predictions for v in run.versions)
                    else record.predictions.get(version),
                    failed=version == run.predicted_version and record.id in failed,
                    score=record.scores.get(version),
                )
                for record in records
            ]
            try:
                evaluation = score(project.ctx.spec.interface, tasks, controls, tuple(run.precisions))
            except ValueError as exc:  # a requested control that is not in the config, or not scored
                raise InvalidRequest(str(exc)) from None
            scored.append((version, evaluation))
        run.keep_scores(scored, {record.id: record.excerpt for record in records})
        run.state, run.finished_at = RunState.DONE, time.time()
        self.runs.save(run)
        return run
