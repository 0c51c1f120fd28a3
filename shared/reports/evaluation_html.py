"""An evaluation run as one self-contained HTML page that opens offline: tables, confusion matrices and
reliability charts as inline SVG, each disagreement with its text, both answers, its score and a link that
opens it in Label Studio; a comparison shows the two versions side by side and the tasks that changed.
Everything shown is escaped: task texts, labels, titles and versions come from the project's users."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from shared.domain.evaluation.calibration import Calibration
from shared.domain.evaluation.run import EvaluationRun, VersionScore
from shared.domain.evaluation.scorers import ControlScore
from shared.domain.evaluation.scoring import COVERAGE, Comparison, lower_is_better
from shared.domain.evaluation.task_changes import BROKEN, CHANGED, FIXED, ControlChanges
from shared.reports.confusion_svg import confusion_svg
from shared.reports.data_manager import project_url, task_url
from shared.reports.evaluation_text import MISSING, coverage_line, number, percent, signed
from shared.reports.reliability_svg import reliability_svg

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #111; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child, table.comparison td:nth-child(2), table.comparison th:nth-child(2) {
  text-align: left; }
th { background: #f3f3f3; }
.better { color: #16803d; } .worse { color: #c82828; }
.meta { color: #555; } code { font-size: 0.95em; }
section.control { border-left: 3px solid #ddd; padding-left: 1em; margin: 1.5em 0; }
table.tasks { width: 100%; } table.tasks td, table.tasks th { vertical-align: top; text-align: left; }
table.tasks td:nth-child(2) { font-size: 0.9em; color: #333; max-width: 32em; }
tr.broken td:first-child { border-left: 4px solid #c82828; } tr.fixed td:first-child { border-left: 4px solid #16803d; }
.caption { color: #555; font-size: 0.85em; max-width: 26em; }
.pictures { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
.versions { display: grid; grid-template-columns: repeat(auto-fit, minmax(30em, 1fr)); gap: 2em; }
.versions > div { min-width: 0; overflow-x: auto; }
"""

CHART_CAPTION = (
    "Bars: the accuracy of each score range; black ticks: its mean score; dashed: perfect calibration. "
    "A bar below its tick is overconfident."
)

THRESHOLD_CAPTION = (
    "Accept the predictions scored at or above the threshold of the precision you need; review the rest "
    "(the Data Manager sorts tasks by prediction score)."
)


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "", row_css: Sequence[str] = ()) -> str:
    """A table of already-escaped cells; ``row_css`` gives rows a class (a task that a comparison fixed …)."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    classes = [f' class="{name}"' if name else "" for name in row_css] or [""] * len(rows)
    body = "".join(
        f"<tr{row_class}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
        for row_class, row in zip(classes, rows, strict=True)
    )
    attribute = f' class="{css}"' if css else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _per_label(score: ControlScore) -> str:
    parts = []
    for rule, labels in score.per_label.items():
        if labels:
            heading = "label" if rule == "match" else f"label ({escape(rule)} spans)"
            rows = [
                [escape(label), number(c.precision), number(c.recall), number(c.f1), str(c.tp), str(c.fp), str(c.fn)]
                for label, c in labels.items()
            ]
            parts.append(_table([heading, "precision", "recall", "F1", "tp", "fp", "fn"], rows))
    return "".join(parts)


def _task_link(run: EvaluationRun, task_id: int) -> str:
    label = f"task {escape(str(task_id))}"
    if run.label_studio_url:
        label = f'<a href="{escape(task_url(run.label_studio_url, run.project, task_id))}">{label}</a>'
    return label


def _answer(text: str | None) -> str:
    return escape(MISSING if text is None else text)


def _score(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def _disagreements(run: EvaluationRun, score: ControlScore, total: int, shown: int) -> str:
    if not total:
        return "<p>No disagreements.</p>"
    first = score.details[:shown]
    rows = [
        [
            _task_link(run, detail.task_id),
            escape(run.excerpt(detail.task_id)),
            _answer(detail.expected),
            _answer(detail.predicted),
            _score(detail.score),
        ]
        for detail in first
    ]
    table = _table(["task", "text", "expected", "predicted", "score"], rows, css="tasks")
    return f"<p>Disagreements: {total} (first {len(first)}):</p>{table}"


def _calibration(calibration: Calibration | None, title: str) -> str:
    if calibration is None or not calibration.items:
        return ""
    unscored = f"; {calibration.unscored} without a score" if calibration.unscored else ""
    buckets = [
        [f"{b.low:.1f}-{b.high:.1f}", str(b.items), number(b.mean_score), number(b.accuracy)]
        for b in calibration.buckets
        if b.items
    ]
    thresholds = [
        [
            f"{t.target:g}",
            "none reaches it" if t.score is None else f"≥ {t.score:.3f}",
            percent(t.precision),
            str(t.items),
            percent(t.share),
        ]
        for t in calibration.thresholds
    ]
    return (
        f"<h4>Calibration of the score</h4><p>ECE {number(calibration.ece)} over {calibration.items} items "
        f"with a score{unscored}.</p>"
        f'<div class="pictures"><div>{reliability_svg(calibration, title)}'
        f'<p class="caption">{CHART_CAPTION}</p></div><div>'
        + _table(["score", "items", "mean score", "accuracy"], buckets)
        + _table(["target precision", "score", "precision", "items", "share"], thresholds)
        + f'<p class="caption">{THRESHOLD_CAPTION}</p></div></div>'
    )


def _control(run: EvaluationRun, version: VersionScore, name: str, score: ControlScore, shown: int) -> str:
    metrics = _table([escape(metric) for metric in score.metrics], [[number(v) for v in score.metrics.values()]])
    picture = ""
    if score.confusion is not None and score.items:
        picture = "<p>Confusion matrix</p>" + confusion_svg(score.confusion, f"{name}, version {version.version}")
    calibration = _calibration(score.calibration, f"{name}, version {version.version}")
    return (
        f'<section class="control"><h3>{escape(name)} <small>({escape(score.kind)}, {score.items} items)</small></h3>'
        f"{metrics}{_per_label(score)}{picture}{calibration}"
        f"{_disagreements(run, score, version.disagreements.get(name, 0), shown)}</section>"
    )


def _version(run: EvaluationRun, version: VersionScore, shown: int) -> str:
    controls = "".join(
        _control(run, version, name, score, shown) for name, score in version.evaluation.controls.items()
    )
    coverage = escape(coverage_line(version.evaluation.coverage))
    return f"<h2>Version <code>{escape(version.version)}</code></h2><p>{coverage}</p>{controls}"


KIND_HEADINGS = {
    BROKEN: "Broken: right before, wrong after",
    FIXED: "Fixed: wrong before, right after",
    CHANGED: "Answered differently, wrong both times",
}


def _changes(run: EvaluationRun, name: str, changes: ControlChanges, shown: int) -> str:
    counts = f"{changes.broken} broken, {changes.fixed} fixed, {changes.changed} answered differently"
    parts = [f"<h3>{escape(name)}</h3><p>{counts}.</p>"]
    totals = {BROKEN: changes.broken, FIXED: changes.fixed, CHANGED: changes.changed}
    for kind, heading in KIND_HEADINGS.items():
        first = [change for change in changes.tasks if change.kind == kind][:shown]
        if not first:
            continue
        rows = []
        for change in first:
            before, after = _answer(change.before), _answer(change.after)
            if change.before_score is not None:
                before += f" <small>({_score(change.before_score)})</small>"
            if change.after_score is not None:
                after += f" <small>({_score(change.after_score)})</small>"
            link, text = _task_link(run, change.task_id), escape(run.excerpt(change.task_id))
            rows.append([link, text, _answer(change.expected), before, after])
        header = ["task", "text", "expected", "before (score)", "after (score)"]
        parts.append(f"<h4>{heading}: {totals[kind]} (first {len(first)})</h4>")
        parts.append(_table(header, rows, css="tasks", row_css=[kind] * len(rows)))
    return "".join(parts)


def _changed_tasks(run: EvaluationRun, shown: int) -> str:
    if not run.changes:
        return ""
    sections = "".join(_changes(run, name, changes, shown) for name, changes in run.changes.items())
    return f"<h2>Tasks that changed</h2>{sections}"


def _comparison(before: str, after: str, comparison: Comparison) -> str:
    rows = []
    for delta in comparison.deltas:
        if delta.control == COVERAGE and delta.metric != "scored":
            continue
        change = delta.delta
        improved = change is not None and (change < 0 if lower_is_better(delta.metric) else change > 0)
        css = "" if not change else ' class="better"' if improved else ' class="worse"'
        rows.append(
            [
                escape(delta.control),
                escape(delta.metric),
                number(delta.before),
                number(delta.after),
                f"<span{css}>{signed(change)}</span>",
            ]
        )
    same = "the same tasks" if comparison.same_tasks else "<strong>different tasks</strong>"
    return (
        f"<h2>Comparison</h2><p><code>{escape(before)}</code> (before) → <code>{escape(after)}</code> (after), "
        f"on {same}. Green marks an improvement, red a regression; lower is better for <code>mae</code>, "
        "<code>ece</code> and the thresholds (the same precision from a lower score covers more tasks).</p>"
        + _table(["control", "metric", "before", "after", "change"], rows, css="comparison")
    )


def render_html(run: EvaluationRun, disagreements: int = 20) -> str:
    title = f"Evaluation of project {run.project}" + (f" “{run.title}”" if run.title else "")
    meta = [f"evaluation <code>{escape(run.id)}</code>", escape(str(run.state)), _when(run.created_at)]
    if run.label_studio_url:
        url = escape(project_url(run.label_studio_url, run.project))
        meta.append(f'<a href="{url}">open in Label Studio</a>')
    body = [f"<h1>{escape(title)}</h1>", f'<p class="meta">{" · ".join(meta)}</p>']
    if run.error:
        body.append(f"<p><strong>Error:</strong> {escape(run.error)}</p>")
    comparison = run.comparison
    if comparison is not None:
        body.append(_comparison(run.scores[0].version, run.scores[1].version, comparison))
        body.append(_changed_tasks(run, disagreements))
        versions = "".join(f"<div>{_version(run, version, disagreements)}</div>" for version in run.scores)
        body.append(f'<div class="versions">{versions}</div>')
    else:
        body += [_version(run, version, disagreements) for version in run.scores]
    if run.skipped_controls:
        items = "".join(f"<li>{escape(name)}: {escape(why)}</li>" for name, why in run.skipped_controls.items())
        body.append(f"<h2>Not scored</h2><ul>{items}</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
