"""Inline SVG charts for the HTML report: a pie per table, bars per month, bars per team. Pure.

Plain SVG text, no script and no external files, so a report saved to disk or mailed opens
anywhere, offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from watchdog.reports.barometer import JA, NEJ, NEJ_GENVURDERING, NEJ_LOVLIG, NEJ_VURDERING, TrendPoint

COLOURS = {
    JA: "#2e7d32",
    NEJ_LOVLIG: "#f9a825",
    NEJ: "#c62828",
    NEJ_VURDERING: "#ef6c00",
    NEJ_GENVURDERING: "#c62828",
}
_OTHER = ("#6a1b9a", "#1565c0", "#5d4037")


def colour(answer: str, index: int = 0) -> str:
    return COLOURS.get(answer, _OTHER[index % len(_OTHER)])


def pie(segments: Sequence[tuple[str, int]], *, title: str, size: int = 180) -> str:
    """A pie of (answer, count); an empty table gets a grey disc that says so."""
    total = sum(c for _, c in segments)
    r = size / 2 - 4
    cx = cy = size / 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart pie" role="img" width="{size}" '
             f'height="{size}" viewBox="0 0 {size} {size}"><title>{escape(title)}</title>']
    if total == 0:
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="#e0e0e0"/>'
                     f'<text x="{cx}" y="{cy}" text-anchor="middle" font-size="13">Ingen sager</text>')
    else:
        angle = -math.pi / 2
        for i, (answer, count) in enumerate(segments):
            if count == 0:
                continue
            label = escape(f"{answer}: {count}")
            if count == total:
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="{colour(answer, i)}">'
                             f'<title>{label}</title></circle>')
                break
            sweep = 2 * math.pi * count / total
            x1, y1 = cx + r * math.cos(angle), cy + r * math.sin(angle)
            angle += sweep
            x2, y2 = cx + r * math.cos(angle), cy + r * math.sin(angle)
            large = 1 if sweep > math.pi else 0
            parts.append(f'<path d="M{cx:.2f},{cy:.2f} L{x1:.2f},{y1:.2f} A{r:.2f},{r:.2f} 0 {large} 1 '
                         f'{x2:.2f},{y2:.2f} Z" fill="{colour(answer, i)}" stroke="#fff" stroke-width="1">'
                         f'<title>{label}</title></path>')
    parts.append("</svg>")
    return "".join(parts)


def bars(values: Sequence[tuple[str, float | None, str]], *, title: str, maximum: float,
         unit: str = "", guides: Sequence[tuple[float, str]] = (), width: int = 640, height: int = 200) -> str:
    """Vertical bars of (label, value or None, caption under the label), with optional guide lines."""
    left, bottom, top = 36, 40, 16
    plot_h = height - bottom - top
    n = max(1, len(values))
    step = (width - left - 8) / n
    bar_w = max(4.0, step * 0.6)
    scale = plot_h / maximum if maximum > 0 else 0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bars" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" stroke="#555"/>']
    for value, label in guides:
        y = top + plot_h - value * scale
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 4}" y2="{y:.1f}" stroke="#999" '
                     f'stroke-dasharray="4 3"/><text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-size="10">{escape(label)}</text>')
    for i, (label, value, caption) in enumerate(values):
        x = left + i * step + (step - bar_w) / 2
        mid = x + bar_w / 2
        if value is not None:
            h = value * scale
            y = top + plot_h - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" '
                         f'fill="#1565c0"><title>{escape(f"{label}: {value:g}{unit}")}</title></rect>'
                         f'<text x="{mid:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="10">'
                         f'{escape(f"{value:g}{unit}".replace(".", ","))}</text>')
        parts.append(f'<text x="{mid:.1f}" y="{top + plot_h + 14}" text-anchor="middle" font-size="10">'
                     f'{escape(label)}</text><text x="{mid:.1f}" y="{top + plot_h + 27}" text-anchor="middle" '
                     f'font-size="9" fill="#555">{escape(caption)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def trend(points: Sequence[TrendPoint], *, title: str) -> str:
    """The monthly "Ja" percent as bars; a month without cases has no bar."""
    return bars([(p.label, p.percent, f"n={p.total}") for p in points], title=title, maximum=100,
                unit=" %", guides=[(50, "50 %"), (100, "100 %")],
                width=max(320, min(960, 60 * len(points) + 60)))
