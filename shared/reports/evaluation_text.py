"""An evaluation run as plain-text tables, for the terminal.

Per version: coverage, then per control its headline metrics, per-label precision/recall/F1, the confusion
matrix (single choices), the calibration of the score (reliability table, ECE, review thresholds) and the
first disagreeing tasks, each with a Data Manager link, both answers, the score and the start of its text;
then, when two versions were compared, every figure side by side with its change and the tasks that changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.domain.evaluation.calibration import Calibration
from shared.domain.evaluation.run import EvaluationRun, VersionScore
from shared.domain.evaluation.scorers import ControlScore, shorten
from shared.domain.evaluation.scoring import COVERAGE, Comparison, Coverage
from shared.domain.evaluation.task_changes import ControlChanges
from shared.reports.data_manager import project_url, task_url

MISSING = "-"  # an undefined ratio (nothing to divide by)
TEXT_EXCERPT_CHARS = 70  # a task's text on a disagreement's line


def number(value: float | None) -> str:
    if value is None:
        return MISSING
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def percent(share: float | None) -> str:
    return MISSING if share is None else f"{share:.1%}"


def signed(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:+d}" if isinstance(value, int) else f"{value:+.3f}"


def table(rows: Sequence[Sequence[str]], indent: int = 4, text_columns: int = 1) -> list[str]:
    """Columns padded to their widest cell: the first ``text_columns`` left-aligned, the numbers right-aligned."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))] if rows else []
    lines = []
    for row in rows:
        cells = [
            cell.ljust(widths[index]) if index < text_columns else cell.rjust(widths[index])
            for index, cell in enumerate(row)
        ]
        lines.append(" " * indent + "  ".join(cells).rstrip())
    return lines


def coverage_line(coverage: Coverage) -> str:
    return (
        f"tasks {coverage.tasks}: scored {coverage.scored}, without ground truth {coverage.without_ground_truth}, "
        f"without a prediction {coverage.without_prediction}, prediction failed {coverage.failed}"
    )


def _per_label(score: ControlScore) -> list[str]:
    lines = []
    for rule, labels in score.per_label.items():
        if not labels:
            continue
        heading = "label" if rule == "match" else f"label ({rule} spans)"
        rows = [[heading, "precision", "recall", "f1", "tp", "fp", "fn"]]
        rows += [
            [label, number(c.precision), number(c.recall), number(c.f1), str(c.tp), str(c.fp), str(c.fn)]
            for label, c in labels.items()
        ]
        lines += table(rows)
    return lines


def _confusion(score: ControlScore) -> list[str]:
    if score.confusion is None or not score.items:
        return []
    matrix = score.confusion
    rows = [["truth \\ predicted", *matrix.labels]]
    rows += [[label, *map(str, counts)] for label, counts in zip(matrix.labels, matrix.rows, strict=True)]
    return ["    confusion matrix (rows: ground truth, columns: prediction)", *table(rows, indent=6)]


def _calibration(calibration: Calibration | None) -> list[str]:
    if calibration is None or not calibration.items:
        return []
    unscored = f", {calibration.unscored} without" if calibration.unscored else ""
    counted = f"{calibration.items} items with a score{unscored}"
    lines = [f"    calibration of the score: ECE {number(calibration.ece)} ({counted})"]
    rows = [["score", "items", "mean score", "accuracy"]]
    rows += [
        [f"{b.low:.1f}-{b.high:.1f}", str(b.items), number(b.mean_score), number(b.accuracy)]
        for b in calibration.buckets
        if b.items
    ]
    lines += table(rows, indent=6)
    for threshold in calibration.thresholds:
        target = f"      precision {threshold.target:g}: "
        if threshold.score is None or threshold.share is None:
            lines.append(target + "no score reaches it")
        else:
            lines.append(
                f"{target}score >= {threshold.score:.3f} ({percent(threshold.precision)} right), "
                f"covers {percent(threshold.share)} ({threshold.items} of {calibration.items} items)"
            )
    return lines


def _link(run: EvaluationRun, task_id: int) -> str:
    return f"  {task_url(run.label_studio_url, run.project, task_id)}" if run.label_studio_url else ""


def _excerpt(run: EvaluationRun, task_id: int) -> str:
    text = run.excerpt(task_id)
    return f"  {shorten(text, TEXT_EXCERPT_CHARS)!r}" if text else ""


def _score(value: float | None) -> str:
    return "" if value is None else f" (score {value:.3f})"


def _disagreements(run: EvaluationRun, score: ControlScore, total: int, shown: int) -> list[str]:
    if not total:
        return ["    disagreements: none"]
    first = score.details[:shown]
    lines = [f"    disagreements: {total} task{'s' if total != 1 else ''}; first {len(first)}:"]
    for detail in first:
        lines.append(f"      task {detail.task_id}{_link(run, detail.task_id)}")
        if detail.expected is not None:
            answers = f"expected {detail.expected}, predicted {detail.predicted}{_score(detail.score)}"
            lines.append(f"        {answers}{_excerpt(run, detail.task_id)}")
    return lines


def version_lines(run: EvaluationRun, version: VersionScore, shown: int) -> list[str]:
    coverage = version.evaluation.coverage
    lines = [f"version {version.version}", f"  {coverage_line(coverage)}"]
    if not coverage.scored and coverage.without_prediction:
        lines.append(
            "  no task holds a prediction of this version: run with --predict, or Retrieve Predictions in Label Studio"
        )
    for name, score in version.evaluation.controls.items():
        metrics = "  ".join(f"{metric} {number(value)}" for metric, value in score.metrics.items())
        lines += ["", f"  {name} ({score.kind}, {score.items} item{'s' if score.items != 1 else ''})"]
        lines.append(f"    {metrics}")
        lines += _per_label(score)
        lines += _confusion(score)
        lines += _calibration(score.calibration)
        lines += _disagreements(run, score, version.disagreements.get(name, 0), shown)
    return lines


def comparison_lines(before: str, after: str, comparison: Comparison) -> list[str]:
    same = "the same tasks" if comparison.same_tasks else "DIFFERENT tasks: the changes mix prompt and task changes"
    rows = [["control", "metric", "before", "after", "change"]]
    rows += [
        [delta.control, delta.metric, number(delta.before), number(delta.after), signed(delta.delta)]
        for delta in comparison.deltas
        if delta.control != COVERAGE or delta.metric == "scored"
    ]
    return [f"comparison: {before} (before) -> {after} (after), on {same}", *table(rows, indent=2, text_columns=2)]


def changes_lines(run: EvaluationRun, name: str, changes: ControlChanges, shown: int) -> list[str]:
    lines = [
        f"  {name}: {changes.fixed} fixed, {changes.broken} broken, {changes.changed} answered differently"
        + (f"; first {min(shown, len(changes.tasks))}:" if changes.tasks else "")
    ]
    for change in changes.tasks[:shown]:
        lines.append(f"    {change.kind} task {change.task_id}{_link(run, change.task_id)}")
        lines.append(
            f"      expected {change.expected}: before {change.before}{_score(change.before_score)}, "
            f"after {change.after}{_score(change.after_score)}"
        )
    return lines


def render_text(run: EvaluationRun, disagreements: int = 5) -> str:
    """The whole run; ``disagreements`` task ids (with links) are listed per control."""
    title = f' "{run.title}"' if run.title else ""
    lines = [f"evaluation {run.id} of project {run.project}{title}: {run.state}"]
    if run.label_studio_url:
        lines.append(f"Label Studio: {project_url(run.label_studio_url, run.project)}")
    if run.job_id:
        lines.append(f"predicted by job {run.job_id} (version {run.predicted_version})")
    if run.error:
        lines.append(f"error: {run.error}")
    for version in run.scores:
        lines += ["", *version_lines(run, version, disagreements)]
    if run.skipped_controls:
        skipped = "; ".join(f"{name} ({why})" for name, why in run.skipped_controls.items())
        lines += ["", f"not scored: {skipped}"]
    comparison = run.comparison
    if comparison is not None:
        lines += ["", *comparison_lines(run.scores[0].version, run.scores[1].version, comparison)]
        if run.changes:
            lines += ["", "tasks that changed (fixed: wrong before, right after; broken: right before, wrong after):"]
            for name, changes in run.changes.items():
                lines += changes_lines(run, name, changes, disagreements)
    return "\n".join(lines) + "\n"
