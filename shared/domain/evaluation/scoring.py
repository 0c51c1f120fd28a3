"""Score a prompt's predictions against the ground truth, per control of the labeling config.

The caller brings, per task, the ground-truth regions (see ``ground_truth.select_ground_truth``) and the
predicted regions of one model version, in task order; the labeling config, parsed by Label Studio's own
``LabelInterface``, says which control each region belongs to and so how it is compared (``scorers``).

Metrics measure the predictions that exist: a task without ground truth, whose prediction failed or that
has no prediction is counted in ``coverage`` and not scored, while a scored prediction that leaves a
control blank counts as ``(none)`` for it.

Each item is also tallied by its score for the calibration (``calibration``): the mean ``score`` of the
prediction's regions of that control when they carry one (as Label Studio allows per region), else the
prediction's ``score``.  The figures come out as plain dataclasses whose ``as_dict()``
is JSON (for Redis) and whose ``flat()`` maps ``(control, metric)`` to a number (for Prometheus and for
comparing two versions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.domain.evaluation.calibration import DEFAULT_PRECISIONS, Calibration, ScoreTally
from shared.domain.evaluation.scorers import SCORERS, ControlScore, Scorer, scorer_for
from shared.domain.labeling.sdk_tags import SdkInterface

COVERAGE = "(coverage)"  # the control name coverage figures carry in the flat view


@dataclass(frozen=True)
class TaskToScore:
    """One task: its ground-truth regions (None: nothing to score against), its predicted regions (None: no
    prediction of this version), whether predicting it failed, and the prediction's score (None: it has none)."""

    task_id: int
    ground_truth: list[dict[str, Any]] | None
    prediction: list[dict[str, Any]] | None
    failed: bool = False
    score: float | None = None


@dataclass
class Coverage:
    """How many tasks were scored and why the others were not; the counts add up to ``tasks``."""

    tasks: int = 0
    scored: int = 0
    without_ground_truth: int = 0
    failed: int = 0
    without_prediction: int = 0


@dataclass
class Evaluation:
    """Every figure of one version on a set of tasks.  ``task_digest`` fingerprints the scored task ids, so
    two evaluations can tell whether they scored the same tasks."""

    coverage: Coverage
    controls: dict[str, ControlScore]
    task_digest: str

    def flat(self) -> dict[tuple[str, str], float]:
        """``(control, metric) -> value`` for every defined figure: the headline metrics, ``items``, each
        label's F1 (``f1:<label>``, or ``exact_f1:<label>`` / ``overlap_f1:<label>`` for spans), the
        calibration (``ece``; per target precision the lowest score reaching it, ``threshold:<target>``, and
        the share of items at or above it, ``share:<target>``) and the coverage counts under the control
        ``(coverage)``."""
        view: dict[tuple[str, str], float] = {(COVERAGE, name): count for name, count in asdict(self.coverage).items()}
        for name, score in self.controls.items():
            view[name, "items"] = score.items
            view.update(((name, metric), value) for metric, value in score.metrics.items() if value is not None)
            view.update(_calibration_figures(name, score.calibration))
            for rule, labels in score.per_label.items():
                prefix = "" if rule == "match" else f"{rule}_"
                view.update(
                    ((name, f"{prefix}f1:{label}"), counts.f1)
                    for label, counts in labels.items()
                    if counts.f1 is not None
                )
        return view

    def as_dict(self) -> dict[str, Any]:
        return {
            "coverage": asdict(self.coverage),
            "controls": {name: score.as_dict() for name, score in self.controls.items()},
            "task_digest": self.task_digest,
            "scores": [
                {"control": control, "metric": metric, "value": value}
                for (control, metric), value in self.flat().items()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        """The inverse of ``as_dict`` (``scores`` is derived, so it is not read back)."""
        return cls(
            coverage=Coverage(**data["coverage"]),
            controls={name: ControlScore.from_dict(score) for name, score in data["controls"].items()},
            task_digest=data["task_digest"],
        )


def _calibration_figures(name: str, calibration: Calibration | None) -> dict[tuple[str, str], float]:
    if calibration is None or calibration.ece is None:
        return {}
    figures = {(name, "ece"): calibration.ece}
    for threshold in calibration.thresholds:
        if threshold.score is not None and threshold.share is not None:
            figures[name, f"threshold:{threshold.target:g}"] = threshold.score
            figures[name, f"share:{threshold.target:g}"] = threshold.share
    return figures


def _scorers(interface: SdkInterface, controls: Iterable[str] | None) -> dict[str, Scorer]:
    if controls is None:
        found = (scorer_for(control) for control in interface.controls)
        return {scorer.control.name: scorer for scorer in found if scorer}
    scorers = {}
    for name in controls:
        try:
            control = interface.get_control(name)
        except Exception:  # the SDK raises a bare Exception for an unknown name
            raise ValueError(f"control {name!r} is not in the labeling config: name one of its controls") from None
        scorer = scorer_for(control)
        if scorer is None:
            raise ValueError(
                f"control {name!r} is a {control.tag}, which is not scored: choose one of {sorted(SCORERS)}"
            )
        scorers[name] = scorer
    return scorers


def _values_by_control(regions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for region in regions:
        if isinstance(region.get("value"), dict) and region.get("from_name"):
            grouped.setdefault(region["from_name"], []).append(region["value"])
    return grouped


def _region_scores(regions: list[dict[str, Any]]) -> dict[str, float]:
    """The mean ``score`` of each control's regions, for the controls whose regions carry one."""
    found: dict[str, list[float]] = {}
    for region in regions:
        value = region.get("score")
        if region.get("from_name") and isinstance(value, int | float) and not isinstance(value, bool):
            found.setdefault(region["from_name"], []).append(float(value))
    return {name: sum(values) / len(values) for name, values in found.items()}


def _digest(task_ids: Iterable[int]) -> str:
    return hashlib.sha256("\n".join(sorted(map(str, task_ids))).encode()).hexdigest()[:16]


def score(
    interface: SdkInterface,
    tasks: Iterable[TaskToScore],
    controls: Iterable[str] | None = None,
    precisions: tuple[float, ...] = DEFAULT_PRECISIONS,
) -> Evaluation:
    """Score every task, per control.

    ``interface`` is a ``label_studio_sdk.label_interface.LabelInterface``; ``controls`` names the controls
    to score (default: every control of a scored type, so leave out the TextArea that holds the prompt);
    ``precisions`` are the target precisions the calibration finds a score threshold for.
    """
    scorers = _scorers(interface, controls)
    tallies = {name: ScoreTally() for name in scorers}
    coverage = Coverage()
    scored: list[int] = []
    for task in tasks:
        coverage.tasks += 1
        if task.ground_truth is None:
            coverage.without_ground_truth += 1
        elif task.failed:
            coverage.failed += 1
        elif task.prediction is None:
            coverage.without_prediction += 1
        else:
            coverage.scored += 1
            scored.append(task.task_id)
            truth, predicted = _values_by_control(task.ground_truth), _values_by_control(task.prediction)
            region_scores = _region_scores(task.prediction)
            for name, scorer in scorers.items():
                item_score = region_scores.get(name, task.score)
                agreed = scorer.add(task.task_id, truth.get(name, []), predicted.get(name, []), item_score)
                if agreed is not None:
                    tallies[name].add(item_score, agreed)
    results = {name: scorer.result() for name, scorer in scorers.items()}
    for name, result in results.items():
        result.calibration = tallies[name].calibration(precisions)
    return Evaluation(coverage, results, _digest(scored))


@dataclass(frozen=True)
class MetricDelta:
    """One figure of two versions: ``delta`` is ``after - before``, None when either is missing."""

    control: str
    metric: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta}


@dataclass
class Comparison:
    """Two versions' figures side by side.  ``same_tasks`` is False when they were scored on different
    tasks, in which case the deltas mix prompt changes with task changes."""

    same_tasks: bool
    deltas: list[MetricDelta] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"same_tasks": self.same_tasks, "deltas": [delta.as_dict() for delta in self.deltas]}


def lower_is_better(metric: str) -> bool:
    """Whether a figure improves as it falls: an error (``mae``, ``ece``), or a ``threshold:<target>`` (the
    same precision reached from a lower score covers more tasks)."""
    return metric in ("mae", "ece") or metric.startswith("threshold:")


def compare(before: Evaluation, after: Evaluation) -> Comparison:
    """Every figure either version has, in the order the first one lists them."""
    old, new = before.flat(), after.flat()
    keys = list(dict.fromkeys([*old, *new]))
    deltas = [
        MetricDelta(control, metric, old.get((control, metric)), new.get((control, metric))) for control, metric in keys
    ]
    return Comparison(before.task_digest == after.task_digest, deltas)
