"""Small server-side SVG charts (pure): numbers people would rather see than read."""
from __future__ import annotations

from datetime import date, timedelta
from html import escape


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above `value` (pure); 1 for nothing at all."""
    if value <= 0:
        return 1.0
    import math

    scale = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * scale * (1 + 1e-9):
            return float(f"{step * scale:.12g}")
    return 10 * scale  # not reached


def axis_label(value: float) -> str:
    """A tick value with the digits it needs and no more: 0.05, 0.25, 2.5, 40."""
    return f"{value:.12g}" if value < 1000 else f"{value:,.0f}"


def daily_bars(rows: list[dict], start: date, end: date, *, width: int = 720, height: int = 180,
               title: str = "GPU-hours per day") -> str:
    """A bar chart of gpu_hours summed per day over [start, end]."""
    days = [(start + timedelta(days=i)) for i in range((end - start).days + 1)]
    totals = {d.isoformat(): 0.0 for d in days}
    for r in rows:
        if r["day"] in totals:
            totals[r["day"]] += r["gpu_hours"]
    peak = nice_ceiling(max(totals.values(), default=0.0))  # the top of the axis, never labelled "0.0"
    left, bottom, top = 44, 22, 18
    plot_w, plot_h = width - left - 8, height - bottom - top
    bar_w = plot_w / max(len(days), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}" class="chart">',
             f'<text x="{left}" y="12" font-size="11" fill="#5b6475">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" stroke="#c9cfd9"/>',
             f'<text x="{left - 6}" y="{top + 4}" font-size="10" text-anchor="end" fill="#5b6475">{axis_label(peak)}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" font-size="10" text-anchor="end" fill="#5b6475">0</text>']
    for i, d in enumerate(days):
        value = totals[d.isoformat()]
        h = plot_h * value / peak
        x = left + i * bar_w + 1
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(bar_w - 2, 1):.1f}" '
                     f'height="{h:.1f}" fill="#4f46e5"><title>{d.isoformat()}: {value:.2f} GPU-hours</title></rect>')
        if len(days) <= 31 and (i % max(len(days) // 6, 1) == 0 or i == len(days) - 1):
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" font-size="10" text-anchor="middle" '
                         f'fill="#5b6475">{d.strftime("%m-%d")}</text>')
    parts.append("</svg>")
    return "".join(parts)
