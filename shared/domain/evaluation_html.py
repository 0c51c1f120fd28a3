"""An evaluation run as one self-contained HTML page: tables, confusion matrices as inline SVG, and links
that open the disagreeing tasks in Label Studio.  Everything shown is escaped: labels and titles come from
the project's users."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from shared.domain.confusion_svg import confusion_svg
from shared.domain.data_manager import project_url, task_url
from shared.domain.evaluation_run import EvaluationRun, VersionScore
from shared.domain.evaluation_text import coverage_line, number, signed
from shared.domain.scorers import ControlScore
from shared.domain.scoring import COVERAGE, Comparison

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
"""


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
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


def _disagreements(run: EvaluationRun, score: ControlScore, total: int, shown: int) -> str:
    if not total:
        return "<p>No disagreements.</p>"
    items = []
    for task_id in score.disagreements[:shown]:
        label = f"task {escape(str(task_id))}"
        if run.label_studio_url:
            label = f'<a href="{escape(task_url(run.label_studio_url, run.project, task_id))}">{label}</a>'
        items.append(f"<li>{label}</li>")
    listed = min(total, shown, len(score.disagreements))
    return f"<p>Disagreements: {total} (first {listed}):</p><ul>{''.join(items)}</ul>"


def _control(run: EvaluationRun, version: VersionScore, name: str, score: ControlScore, shown: int) -> str:
    metrics = _table([escape(metric) for metric in score.metrics], [[number(v) for v in score.metrics.values()]])
    picture = ""
    if score.confusion is not None and score.items:
        picture = "<p>Confusion matrix</p>" + confusion_svg(score.confusion, f"{name}, version {version.version}")
    return (
        f'<section class="control"><h3>{escape(name)} <small>({escape(score.kind)}, {score.items} items)</small></h3>'
        f"{metrics}{_per_label(score)}{picture}"
        f"{_disagreements(run, score, version.disagreements.get(name, 0), shown)}</section>"
    )


def _version(run: EvaluationRun, version: VersionScore, shown: int) -> str:
    controls = "".join(
        _control(run, version, name, score, shown) for name, score in version.evaluation.controls.items()
    )
    coverage = escape(coverage_line(version.evaluation.coverage))
    return f"<h2>Version <code>{escape(version.version)}</code></h2><p>{coverage}</p>{controls}"


def _comparison(before: str, after: str, comparison: Comparison) -> str:
    rows = []
    for delta in comparison.deltas:
        if delta.control == COVERAGE and delta.metric != "scored":
            continue
        change = delta.delta
        css = "" if not change else ' class="better"' if change > 0 else ' class="worse"'
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
        f"on {same}. For <code>mae</code> lower is better.</p>"
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
    body += [_version(run, version, disagreements) for version in run.scores]
    if run.skipped_controls:
        items = "".join(f"<li>{escape(name)}: {escape(why)}</li>" for name, why in run.skipped_controls.items())
        body.append(f"<h2>Not scored</h2><ul>{items}</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
