"""A reliability table as a small inline SVG chart, for the HTML report (no plotting library needed).

One bar per score bucket that holds items: its width the bucket's score range, its height the accuracy
of those items, its shade their share of the items.  A black tick marks the bucket's mean score, what the
scores promised, and the dashed diagonal is perfect calibration: a bar below its tick is overconfident,
above it underconfident.  Each bucket shows its count and, on hover, its figures.
"""

from __future__ import annotations

from html import escape

from shared.domain.evaluation.calibration import Calibration

PLOT = 200  # the square plot area, in pixels
LEFT, TOP, RIGHT, BOTTOM = 44, 16, 10, 38
BLUE = (37, 99, 235)


def _shade(share: float) -> str:
    """Blue over white: at least a quarter, so a small bucket stays visible."""
    strength = 0.25 + 0.75 * share
    red, green, blue = (round(255 - (255 - channel) * strength) for channel in BLUE)
    return f"#{red:02x}{green:02x}{blue:02x}"


def reliability_svg(calibration: Calibration, title: str = "") -> str:
    width, height = LEFT + PLOT + RIGHT, TOP + PLOT + BOTTOM
    name = escape(title or "reliability")

    def x(score: float) -> float:
        return LEFT + score * PLOT

    def y(value: float) -> float:
        return TOP + (1 - value) * PLOT

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{name}" font-family="sans-serif" font-size="11">',
        f"<title>{name}: accuracy of the items in each score bucket; the diagonal is perfect calibration</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{PLOT}" height="{PLOT}" fill="#fafafa" stroke="#999999"/>',
    ]
    for tick in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{x(tick):.1f}" y="{TOP + PLOT + 14}" text-anchor="middle">{tick:g}</text>')
        parts.append(f'<text x="{LEFT - 5}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    parts.append(f'<text x="{x(0.5):.1f}" y="{height - 6}" text-anchor="middle" font-weight="bold">score</text>')
    parts.append(
        f'<text x="12" y="{y(0.5):.1f}" text-anchor="middle" font-weight="bold" '
        f'transform="rotate(-90 12 {y(0.5):.1f})">accuracy</text>'
    )
    for bucket in calibration.buckets:
        if not bucket.items or bucket.accuracy is None or bucket.mean_score is None:
            continue
        share = bucket.items / calibration.items if calibration.items else 0.0
        left, right = x(bucket.low) + 1, x(bucket.high) - 1
        hover = (
            f"scores {bucket.low:.1f}-{bucket.high:.1f}: {bucket.items} item{'s' if bucket.items != 1 else ''}, "
            f"mean score {bucket.mean_score:.3f}, accuracy {bucket.accuracy:.3f}"
        )
        top = y(bucket.accuracy)
        parts.append(
            f"<g><title>{escape(hover)}</title>"
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{TOP + PLOT - top:.1f}" '
            f'fill="{_shade(share)}"/>'
            f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{y(bucket.mean_score):.1f}" y2="{y(bucket.mean_score):.1f}" '
            'stroke="#111111" stroke-width="2"/>'
            f'<text x="{(left + right) / 2:.1f}" y="{min(top, y(bucket.mean_score)) - 3:.1f}" '
            f'text-anchor="middle" font-size="9">{bucket.items}</text></g>'
        )
    parts.append(
        f'<line x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(1):.1f}" y2="{y(1):.1f}" stroke="#888888" '
        'stroke-dasharray="4 3"/>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
