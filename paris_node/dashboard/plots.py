"""Loss curves as small server-rendered SVG (no script, no inline style: the page's CSP allows neither).

Colours and fonts come from the page's stylesheet through class names; only geometry is in the markup. Every
number is formatted here, every text node escaped, so a point from a peer cannot smuggle markup in.
Pure module.
"""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT = 360, 150
LEFT, RIGHT, TOP, BOTTOM = 52, 10, 22, 24
SERIES = (("train_loss", "train"), ("val_loss", "val"))


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def loss_svg(points: list[dict[str, Any]], title: str = "", width: int = WIDTH, height: int = HEIGHT) -> str:
    """An SVG element plotting train and validation loss against step; a placeholder when there is nothing."""
    label = escape(title or "loss", quote=True)
    head = (
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}">'
    )
    series = {
        key: [(p["step"], p[key]) for p in points if isinstance(p.get(key), (int, float)) and p[key] == p[key]]
        for key, _ in SERIES
    }
    xy = [pt for s in series.values() for pt in s]
    if not xy:
        return head + f'<text class="empty" x="{width / 2:.0f}" y="{height / 2:.0f}">no losses yet</text></svg>'
    x0, x1 = min(x for x, _ in xy), max(x for x, _ in xy)
    y0, y1 = min(y for _, y in xy), max(y for _, y in xy)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - abs(y0) * 0.05 - 1e-3, y1 + abs(y1) * 0.05 + 1e-3
    pw, ph = width - LEFT - RIGHT, height - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * ph

    out = [head, f"<title>{label}</title>"]
    out.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/>')
    for frac in (0.0, 0.5, 1.0):
        y = y0 + frac * (y1 - y0)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}"/>')
        out.append(f'<text class="tick" x="{LEFT - 4}" y="{py(y) + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
    bottom = TOP + ph + 15
    out.append(f'<text class="tick" x="{LEFT}" y="{bottom}" text-anchor="start">step {int(x0)}</text>')
    out.append(f'<text class="tick" x="{LEFT + pw}" y="{bottom}" text-anchor="end">{int(x1)}</text>')
    legend_x = LEFT
    for key, name in SERIES:
        pts = series[key]
        if not pts:
            continue
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        if len(pts) == 1:
            x, y = pts[0]
            out.append(f'<circle class="series {name}" cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5"/>')
        else:
            out.append(f'<polyline class="series {name}" points="{coords}"/>')
        out.append(f'<text class="legend {name}" x="{legend_x}" y="{TOP - 8}">{name} {_fmt(pts[-1][1])}</text>')
        legend_x += 96
    out.append("</svg>")
    return "".join(out)
