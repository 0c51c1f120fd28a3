"""A confusion matrix as an inline SVG picture, for the HTML report (no plotting library needed).

Rows are the ground truth, columns the prediction.  A cell's shade is its share of the row (how the
tasks of one true label were predicted), so a good prompt draws a dark diagonal whatever the class sizes;
diagonal cells are green, the confusions red, and every cell shows its count (its share on hover).
"""

from __future__ import annotations

from html import escape

from shared.domain.evaluation.scorers import Confusion

CELL = 44
CHAR_WIDTH = 7.0  # a 12 px sans-serif character, on average
MAX_LABEL_CHARS = 28
PAD = 8
AXIS_GAP = 18  # room for an axis title
GREEN, RED = (22, 128, 61), (200, 40, 40)


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def _shade(base: tuple[int, int, int], share: float) -> str:
    """``base`` blended over white by ``share`` (0: white, 1: the full colour)."""
    red, green, blue = (round(255 - (255 - channel) * share) for channel in base)
    return f"#{red:02x}{green:02x}{blue:02x}"


def confusion_svg(confusion: Confusion, title: str = "") -> str:
    labels = [_short(label) for label in confusion.labels]
    size = len(labels)
    margin = max((len(label) for label in labels), default=1) * CHAR_WIDTH + PAD
    left, top = AXIS_GAP + margin, AXIS_GAP + margin  # column labels run diagonally up: same room as rows
    width, height = left + size * CELL + PAD, top + size * CELL + AXIS_GAP + PAD
    name = escape(title or "confusion matrix")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{name}" '
        'font-family="sans-serif" font-size="12">',
        f"<title>{name}: rows are the ground truth, columns the prediction</title>",
        f'<text x="{left + size * CELL / 2:.1f}" y="12" text-anchor="middle" font-weight="bold">prediction</text>',
        f'<text x="12" y="{top + size * CELL / 2:.1f}" text-anchor="middle" font-weight="bold" '
        f'transform="rotate(-90 12 {top + size * CELL / 2:.1f})">ground truth</text>',
    ]
    for index, label in enumerate(labels):
        x, y = left + index * CELL + CELL / 2, top + index * CELL + CELL / 2
        parts.append(
            f'<text x="{x:.1f}" y="{top - 6:.1f}" transform="rotate(-45 {x:.1f} {top - 6:.1f})">{escape(label)}</text>'
        )
        parts.append(f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    for row, counts in enumerate(confusion.rows):
        total = sum(counts)
        for column, count in enumerate(counts):
            share = count / total if total else 0.0
            fill = _shade(GREEN if row == column else RED, share) if count else "#ffffff"
            x, y = left + column * CELL, top + row * CELL
            hover = (
                f"ground truth {confusion.labels[row]}, predicted {confusion.labels[column]}: "
                f"{count} task{'s' if count != 1 else ''}" + (f" ({share:.0%} of the row)" if total else "")
            )
            colour = "#ffffff" if share > 0.55 else "#111111"
            parts.append(
                f'<g><title>{escape(hover)}</title><rect x="{x:.1f}" y="{y:.1f}" width="{CELL}" height="{CELL}" '
                f'fill="{fill}" stroke="#999999"/><text x="{x + CELL / 2:.1f}" y="{y + CELL / 2 + 4:.1f}" '
                f'text-anchor="middle" fill="{colour}">{count}</text></g>'
            )
    parts.append("</svg>")
    return "\n".join(parts)
