"""Small charts drawn on the server as SVG: no script, no CDN, readable without JavaScript and allowed
by the content security policy (presentation attributes only, no inline styles).

    column_chart(points, title=..., value_text=...)   # one column per point, e.g. images per month
    bar_chart(points, title=..., value_text=...)      # one horizontal bar per point, e.g. per format

`points` are (label, value) pairs; `value_text(value)` words a value for its label ("3", "1.2 GB").
"""

from collections.abc import Callable, Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

PRIMARY = "#0d6efd"
GRID = "#dee2e6"
TEXT = "#6c757d"


def _e(value) -> str:
    return escape(str(value))


def column_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    value_text: Callable[[float], str] = str,
    width: int = 480,
    height: int = 180,
    testid: str = "",
) -> SafeString:
    top, bottom, side = 18, 22, 4
    plot = height - top - bottom
    highest = max((value for _label, value in points), default=0) or 1
    step = (width - 2 * side) / max(len(points), 1)
    bar = max(step * 0.62, 2)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" '
        f'preserveAspectRatio="xMidYMid meet"{_testid(testid)}><title>{_e(title)}</title>',
        f'<line x1="0" y1="{top + plot}" x2="{width}" y2="{top + plot}" stroke="{GRID}"/>',
    ]
    for index, (label, value) in enumerate(points):
        x = side + index * step + (step - bar) / 2
        h = plot * value / highest
        y = top + plot - h
        centre = x + bar / 2
        text = _e(value_text(value))
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" rx="2" fill="{PRIMARY}">'
            f"<title>{_e(label)}: {text}</title></rect>"
        )
        if value:
            parts.append(
                f'<text x="{centre:.1f}" y="{y - 4:.1f}" font-size="10" text-anchor="middle" fill="{TEXT}">{text}</text>'
            )
        parts.append(
            f'<text x="{centre:.1f}" y="{height - 6}" font-size="10" text-anchor="middle" fill="{TEXT}">{_e(label)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every value is escaped


def bar_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    value_text: Callable[[float], str] = str,
    width: int = 480,
    row: int = 24,
    testid: str = "",
) -> SafeString:
    label_width, value_width = 70, 90
    height = max(len(points), 1) * row + 4
    plot = width - label_width - value_width
    highest = max((value for _label, value in points), default=0) or 1
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" '
        f'preserveAspectRatio="xMinYMin meet"{_testid(testid)}><title>{_e(title)}</title>'
    ]
    for index, (label, value) in enumerate(points):
        y = 2 + index * row
        w = max(plot * value / highest, 1 if value else 0)
        text = _e(value_text(value))
        parts.append(
            f'<text x="0" y="{y + row * 0.65:.1f}" font-size="12" fill="{TEXT}">{_e(label)}</text>'
            f'<rect x="{label_width}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" rx="2" fill="{PRIMARY}">'
            f"<title>{_e(label)}: {text}</title></rect>"
            f'<text x="{label_width + w + 6:.1f}" y="{y + row * 0.65:.1f}" font-size="12" fill="{TEXT}">{text}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every value is escaped


def _testid(testid: str) -> str:
    return f' data-testid="{_e(testid)}"' if testid else ""
