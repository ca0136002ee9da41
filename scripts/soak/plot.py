"""The soak's plot: one small panel per group of series, drawn as plain SVG (no plotting library).

Each panel scales its own y axis from zero to its largest value, marks the end of the warm-up with a
dashed line, and names each series with its last value, so growth reads as a rising line.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

Points = list[tuple[float, float]]

WIDTH, PANEL_H, MARGIN_L, MARGIN_R, TOP = 900, 170, 70, 230, 40
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


def human(value: float, unit: str) -> str:
    if unit in ("bytes", "table_bytes"):
        for suffix, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}"
        return f"{value:.0f} B"
    return f"{value:.1f}" if unit in ("seconds", "ms") else f"{value:.0f}"


def panel(title: str, unit: str, series: dict[str, Points], top: int, duration_s: float, warmup_s: float) -> str:
    plot_w = WIDTH - MARGIN_L - MARGIN_R
    plot_h = PANEL_H - 45
    y0 = top + 25
    peak = max((v for points in series.values() for _, v in points), default=0.0) or 1.0
    span = duration_s or 1.0

    def x(t: float) -> float:
        return MARGIN_L + plot_w * t / span

    def y(v: float) -> float:
        return y0 + plot_h * (1 - v / peak)

    parts = [
        f'<text x="{MARGIN_L}" y="{top + 15}" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{MARGIN_L}" y="{y0}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
        f'<text x="{MARGIN_L - 5}" y="{y0 + 4}" text-anchor="end">{escape(human(peak, unit))}</text>',
        f'<text x="{MARGIN_L - 5}" y="{y0 + plot_h}" text-anchor="end">0</text>',
        f'<line x1="{x(warmup_s):.1f}" y1="{y0}" x2="{x(warmup_s):.1f}" y2="{y0 + plot_h}" '
        'stroke="#555" stroke-dasharray="4 3"/>',
    ]
    for n, (name, points) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        if points:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        last = human(points[-1][1], unit) if points else "-"
        parts.append(
            f'<text x="{WIDTH - MARGIN_R + 10}" y="{y0 + 12 + 13 * n}" fill="{colour}">'
            f"{escape(name)}: {escape(last)}</text>"
        )
    return "\n".join(parts)


def write_svg(
    path: Path, title: str, panels: list[tuple[str, str, dict[str, Points]]], duration_s: float, warmup_s: float
) -> None:
    """``panels``: (title, unit, {series: [(t_s, value), ...]}) each; the x axis is seconds into the run."""
    height = TOP + PANEL_H * len(panels) + 30
    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{MARGIN_L}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for n, (name, unit, series) in enumerate(panels):
        body.append(panel(name, unit, series, TOP + n * PANEL_H, duration_s, warmup_s))
    body.append(
        f'<text x="{MARGIN_L}" y="{height - 8}">seconds into the run, 0 to {duration_s:.0f}; '
        f"dashed line: end of warm-up ({warmup_s:.0f} s)</text>"
    )
    body.append("</svg>")
    path.write_text("\n".join(body) + "\n")
