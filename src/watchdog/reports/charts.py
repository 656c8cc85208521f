"""Inline SVG charts for the HTML report: a pie per table, bars per month, bars per team. Pure.

Plain SVG text, no script and no external files, so a report saved to disk or mailed opens
anywhere, offline. Answers are told apart by more than colour: each has its own fill pattern
(solid, stripes, cross-hatch, dots), the same in the pie, in the legend and beside the table's
rows, and the legend names each answer with its count. Charts scale down to the page width
(``viewBox``), so a wide chart never runs off the page or pushes the next one a page down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from watchdog.reports.questions import JA, NEJ, NEJ_GENVURDERING, NEJ_LOVLIG, NEJ_VURDERING

# Colours with enough contrast against white and against each other's patterns.
COLOURS = {
    JA: "#1b5e20",
    NEJ_LOVLIG: "#8d6e00",
    NEJ: "#b71c1c",
    NEJ_VURDERING: "#bf360c",
    NEJ_GENVURDERING: "#b71c1c",
}
_OTHER = ("#6a1b9a", "#1565c0", "#5d4037")
# The pattern of each answer (its second, colour-free cue) and its name in the legend.
PATTERNS = {JA: "solid", NEJ_LOVLIG: "stripes", NEJ: "cross", NEJ_VURDERING: "dots", NEJ_GENVURDERING: "cross"}
PATTERN_NAMES_DA = {"solid": "fyldt", "stripes": "skrå striber", "cross": "krydsskravering", "dots": "prikker"}
_OTHER_PATTERNS = ("dots", "stripes", "cross")


def colour(answer: str, index: int = 0) -> str:
    return COLOURS.get(answer, _OTHER[index % len(_OTHER)])


def pattern(answer: str, index: int = 0) -> str:
    return PATTERNS.get(answer, _OTHER_PATTERNS[index % len(_OTHER_PATTERNS)])


def _pattern_def(pid: str, kind: str, c: str) -> str:
    inner = {
        "stripes": f'<rect width="8" height="8" fill="#fff"/><path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" '
                   f'stroke="{c}" stroke-width="3"/>',
        "cross": f'<rect width="8" height="8" fill="{c}"/><path d="M0,0 L8,8 M8,0 L0,8" stroke="#fff" '
                 f'stroke-width="1.5"/>',
        "dots": f'<rect width="8" height="8" fill="#fff"/><circle cx="4" cy="4" r="2.6" fill="{c}"/>',
    }[kind]
    return f'<pattern id="{pid}" width="8" height="8" patternUnits="userSpaceOnUse">{inner}</pattern>'


def _defs(prefix: str, answers: Sequence[str]) -> str:
    """One <pattern> per patterned answer, ids unique per chart (``prefix``)."""
    parts = [_pattern_def(f"{prefix}-{i}", pattern(a, i), colour(a, i))
             for i, a in enumerate(answers) if pattern(a, i) != "solid"]
    return f"<defs>{''.join(parts)}</defs>" if parts else ""


def _fill(prefix: str, answer: str, index: int) -> str:
    return colour(answer, index) if pattern(answer, index) == "solid" else f"url(#{prefix}-{index})"


def swatch(answer: str, index: int, *, prefix: str) -> str:
    """A small square in the answer's colour and pattern (decorative: the text beside it names it).
    ``prefix`` must be unique in the page (it names the square's pattern)."""
    kind = pattern(answer, index)
    defs = "" if kind == "solid" else f"<defs>{_pattern_def(f'{prefix}-{index}', kind, colour(answer, index))}</defs>"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="swatch" width="16" height="16" viewBox="0 0 16 16" '
            f'aria-hidden="true" focusable="false">{defs}<rect x="0.5" y="0.5" width="15" height="15" '
            f'fill="{_fill(prefix, answer, index)}" stroke="#333"/></svg>')


def pie(segments: Sequence[tuple[str, int]], *, title: str, size: int = 180, chart_id: str = "pie") -> str:
    """A pie of (answer, count) with patterns; an empty table gets a grey disc that says so."""
    total = sum(c for _, c in segments)
    r = size / 2 - 4
    cx = cy = size / 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart pie" role="img" aria-label="{escape(title)}" '
             f'width="{size}" height="{size}" viewBox="0 0 {size} {size}"><title>{escape(title)}</title>',
             _defs(chart_id, [a for a, _ in segments])]
    if total == 0:
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="#e0e0e0"/>'
                     f'<text x="{cx}" y="{cy}" text-anchor="middle" font-size="13" fill="#222">Ingen sager</text>')
    else:
        angle = -math.pi / 2
        for i, (answer, count) in enumerate(segments):
            if count == 0:
                continue
            label = escape(f"{answer}: {count}")
            fill = _fill(chart_id, answer, i)
            if count == total:
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="{fill}" stroke="#333">'
                             f'<title>{label}</title></circle>')
                break
            sweep = 2 * math.pi * count / total
            x1, y1 = cx + r * math.cos(angle), cy + r * math.sin(angle)
            angle += sweep
            x2, y2 = cx + r * math.cos(angle), cy + r * math.sin(angle)
            large = 1 if sweep > math.pi else 0
            parts.append(f'<path d="M{cx:.2f},{cy:.2f} L{x1:.2f},{y1:.2f} A{r:.2f},{r:.2f} 0 {large} 1 '
                         f'{x2:.2f},{y2:.2f} Z" fill="{fill}" stroke="#fff" stroke-width="1.5">'
                         f'<title>{label}</title></path>')
    parts.append("</svg>")
    return "".join(parts)


def bars(values: Sequence[tuple[str, float | None, str]], *, title: str, maximum: float,
         unit: str = "", guides: Sequence[tuple[float, str]] = (), width: int = 640, height: int = 200,
         provisional: Sequence[bool] = ()) -> str:
    """Vertical bars of (label, value or None, caption under the label), with optional guide lines.
    A provisional bar (a month not yet over) is drawn as an outline marked "foreløbig"."""
    left, bottom, top = 36, 40, 16
    plot_h = height - bottom - top
    n = max(1, len(values))
    step = (width - left - 8) / n
    bar_w = max(4.0, step * 0.6)
    scale = plot_h / maximum if maximum > 0 else 0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bars" role="img" aria-label="{escape(title)}" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet">'
             f'<title>{escape(title)}</title>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" stroke="#555"/>']
    for value, label in guides:
        y = top + plot_h - value * scale
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 4}" y2="{y:.1f}" stroke="#767676" '
                     f'stroke-dasharray="4 3"/><text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-size="10" fill="#222">{escape(label)}</text>')
    for i, (label, value, caption) in enumerate(values):
        x = left + i * step + (step - bar_w) / 2
        mid = x + bar_w / 2
        partial = i < len(provisional) and provisional[i]
        if value is not None:
            h = value * scale
            y = top + plot_h - h
            text = f"{value:g}{unit}".replace(".", ",")
            if partial:
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" '
                             f'fill="#fff" stroke="#1565c0" stroke-width="1.5" stroke-dasharray="3 2">'
                             f'<title>{escape(f"{label}: {text}, foreløbig (måneden er ikke slut)")}</title></rect>'
                             f'<text x="{mid:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="10" fill="#222">'
                             f'({escape(text)})</text>')
            else:
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" '
                             f'fill="#1565c0"><title>{escape(f"{label}: {text}")}</title></rect>'
                             f'<text x="{mid:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="10" fill="#222">'
                             f'{escape(text)}</text>')
        parts.append(f'<text x="{mid:.1f}" y="{top + plot_h + 14}" text-anchor="middle" font-size="10" fill="#222">'
                     f'{escape(label)}</text><text x="{mid:.1f}" y="{top + plot_h + 27}" text-anchor="middle" '
                     f'font-size="9" fill="#444">{escape(caption)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def trend(points: Sequence, *, title: str) -> str:
    """The monthly "Ja" percent as bars; a month without cases has no bar; the month not yet over
    at the as-of instant is an outlined bar with its percent in brackets and "foreløbig" under it."""
    return bars([(p.label, p.percent, f"n={p.total}" + (", foreløbig" if p.partial else "")) for p in points],
                title=title, maximum=100, unit=" %", guides=[(50, "50 %"), (100, "100 %")],
                width=max(320, min(960, 60 * len(points) + 60)), provisional=[p.partial for p in points])
