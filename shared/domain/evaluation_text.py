"""An evaluation run as plain-text tables, for the terminal.

Per version: coverage, then per control its headline metrics, per-label precision/recall/F1, the confusion
matrix (single choices) and the first disagreeing tasks with a Data Manager link each; then, when two
versions were compared, every figure side by side with its change.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.domain.data_manager import project_url, task_url
from shared.domain.evaluation_run import EvaluationRun, VersionScore
from shared.domain.scorers import ControlScore
from shared.domain.scoring import COVERAGE, Comparison, Coverage

MISSING = "-"  # an undefined ratio (nothing to divide by)


def number(value: float | None) -> str:
    if value is None:
        return MISSING
    return str(value) if isinstance(value, int) else f"{value:.3f}"


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


def _disagreements(run: EvaluationRun, score: ControlScore, total: int, shown: int) -> list[str]:
    if not total:
        return ["    disagreements: none"]
    first = score.disagreements[:shown]
    lines = [f"    disagreements: {total} task{'s' if total != 1 else ''}; first {len(first)}:"]
    for task_id in first:
        link = f"  {task_url(run.label_studio_url, run.project, task_id)}" if run.label_studio_url else ""
        lines.append(f"      task {task_id}{link}")
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
    return "\n".join(lines) + "\n"
