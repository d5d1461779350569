"""Tiny SVG charts for the HTML report: no plotting library, no script, no network.

Five chart kinds, each a function returning one ``<svg>`` element as text: line charts (learning curves),
dot-and-whisker effect charts, scatter charts (Pareto fronts), horizontal bar charts (importances) and
heatmaps (attention entropy per layer and head).
Values are mapped to pixels by a linear (or log10) scale with "nice" tick steps (1, 2, 5 × 10^k).
Hovering a mark shows its exact value (an SVG ``<title>``, native in every browser).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

#: Tableau 10: distinguishable, colour-blind friendly enough, fine on white
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
#: viridis at five stops (dark = low, yellow = high): perceptually uniform, readable in grey and by most
#: colour-blind readers; :func:`ramp` interpolates between them
SEQUENTIAL = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")
EMPTY = "#ececec"  # a heatmap cell without a value
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
CHAR_W = 6.4  # rough width of one 11px character, for layout


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def ramp(t: float, stops: Sequence[str] = SEQUENTIAL) -> str:
    """The colour at ``t`` in [0, 1] (clipped) on a piecewise-linear ramp through ``stops``."""
    t = min(1.0, max(0.0, t)) if math.isfinite(t) else 0.0
    x = t * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    a, b = (tuple(int(c[k:k + 2], 16) for k in (1, 3, 5)) for c in (stops[i], stops[i + 1]))
    return "#" + "".join(f"{round(p + (q - p) * f):02x}" for p, q in zip(a, b, strict=True))


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (whole numbers only with ``integer``)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, round(step))
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    ticks = [float(f"{k * step:.12g}") for k in range(first, last + 1)]
    return ticks


def fmt_tick(v: float, ticks: Sequence[float] = ()) -> str:
    """A tick label with as many decimals as the tick step needs (``5.40``, ``0.025``, ``12k``)."""
    if v == 0:
        return "0"
    if abs(v) >= 1e4:
        for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(v) >= div:
                return f"{v / div:g}{unit}"
    step = min((abs(b - a) for a, b in zip(ticks, ticks[1:], strict=False)), default=0.0) or abs(v)
    decimals = 0
    while decimals < 8 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    return f"{v:.{decimals}f}"


@dataclass
class Scale:
    lo: float
    hi: float
    a: float  # pixel of lo
    b: float  # pixel of hi
    log: bool = False
    integer: bool = False

    def __call__(self, v: float) -> float:
        lo, hi, v = (math.log10(self.lo), math.log10(self.hi), math.log10(v)) if self.log else (self.lo, self.hi, v)
        if hi == lo:
            return (self.a + self.b) / 2
        return self.a + (v - lo) / (hi - lo) * (self.b - self.a)

    def ticks(self, n: int = 5) -> list[float]:
        if not self.log:
            return nice_ticks(self.lo, self.hi, n, self.integer)
        lo, hi = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
        ticks = [10.0 ** k * m for k in range(lo, hi + 1) for m in (1, 2, 5) if self.lo <= 10.0 ** k * m <= self.hi]
        return ticks if len(ticks) >= 2 else [self.lo, self.hi]


def padded(lo: float, hi: float, frac: float = 0.06) -> tuple[float, float]:
    if hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * frac
    return lo - pad, hi + pad


def _svg(width: float, height: float, label: str, body: list[str]) -> str:
    return (
        f'<svg width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}" '
        f'font-family="{escape(FONT)}" font-size="11">'
        f"<title>{escape(label)}</title>" + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = 11, fill: str = "#333",
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"{extra}>'
            f"{escape(s)}</text>")


def _x_axis(sx: Scale, y: float, top: float, label: str, grid: bool = True) -> list[str]:
    out = []
    ticks = sx.ticks()
    for t in ticks:
        px = sx(t)
        if grid:
            out.append(f'<line x1="{px:.1f}" y1="{top:.1f}" x2="{px:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<line x1="{px:.1f}" y1="{y:.1f}" x2="{px:.1f}" y2="{y + 4:.1f}" stroke="#888"/>')
        out.append(_text(px, y + 16, fmt_tick(t, ticks), "middle", fill="#555"))
    out.append(f'<line x1="{sx.a:.1f}" y1="{y:.1f}" x2="{sx.b:.1f}" y2="{y:.1f}" stroke="#888"/>')
    out.append(_text((sx.a + sx.b) / 2, y + 34, label, "middle", 12, "#222"))
    return out


def _y_axis(sy: Scale, x: float, right: float, label: str) -> list[str]:
    out = []
    ticks = sy.ticks()
    for t in ticks:
        py = sy(t)
        out.append(f'<line x1="{x:.1f}" y1="{py:.1f}" x2="{right:.1f}" y2="{py:.1f}" stroke="#eee"/>')
        out.append(f'<line x1="{x - 4:.1f}" y1="{py:.1f}" x2="{x:.1f}" y2="{py:.1f}" stroke="#888"/>')
        out.append(_text(x - 7, py + 4, fmt_tick(t, ticks), "end", fill="#555"))
    out.append(f'<line x1="{x:.1f}" y1="{sy.a:.1f}" x2="{x:.1f}" y2="{sy.b:.1f}" stroke="#888"/>')
    cy = (sy.a + sy.b) / 2
    out.append(_text(16, cy, label, "middle", 12, "#222", f' transform="rotate(-90 16 {cy:.1f})"'))
    return out


def _legend(items: Sequence[tuple[str, str]], x: float, y: float, width: float) -> tuple[list[str], float]:
    """Legend entries laid out in rows below a chart; returns the elements and the height used."""
    out, cx, cy = [], x, y
    for label, col in items:
        w = 22 + CHAR_W * len(label) + 18
        if cx > x and cx + w > x + width:
            cx, cy = x, cy + 18
        out.append(f'<rect x="{cx:.1f}" y="{cy - 8:.1f}" width="14" height="4" rx="2" fill="{col}"/>')
        out.append(_text(cx + 20, cy - 2, label))
        cx += w
    return out, (cy - y + 18) if items else 0


@dataclass
class Series:
    label: str
    color: str
    points: list[tuple[float, float]]
    dashed: bool = False  # e.g. a curve from runs that did not complete


def line_chart(series: Sequence[Series], *, title: str, xlabel: str, ylabel: str, width: int = 720,
               height: int = 340) -> str:
    """Lines with point markers (learning curves: one series per configuration)."""
    pts = [p for s in series for p in s.points]
    left, right, top, bottom = 72, 20, 16, 46
    legend, legend_h = _legend([(s.label, s.color) for s in series], left, height + 6, width - left - right)
    if not pts:
        return _svg(width, 60, title, [_text(10, 30, "no points to plot")])
    integer = all(float(p[0]).is_integer() for p in pts)  # steps
    sx = Scale(*padded(min(p[0] for p in pts), max(p[0] for p in pts), 0.02), left, width - right, integer=integer)
    sy = Scale(*padded(min(p[1] for p in pts), max(p[1] for p in pts)), height - bottom, top)
    body = _y_axis(sy, left, width - right, ylabel) + _x_axis(sx, height - bottom, top, xlabel, grid=False)
    for s in series:
        xy = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        body.append(f'<polyline points="{xy}" fill="none" stroke="{s.color}" stroke-width="2"{dash} '
                    f'stroke-linejoin="round"><title>{escape(s.label)}</title></polyline>')
        for x, y in s.points:
            body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{s.color}">'
                        f"<title>{escape(s.label)}: step {x:g}, {ylabel} {y:.4f}</title></circle>")
    return _svg(width, height + legend_h + 6, title, body + legend)


@dataclass
class Whisker:
    label: str
    estimate: float
    low: float | None
    high: float | None
    color: str = PALETTE[0]
    note: str = ""


def effect_chart(rows: Sequence[Whisker], *, title: str, xlabel: str, reference: str, width: int = 720) -> str:
    """One row per value: the estimate (dot) and its interval (whisker), against a dashed zero line."""
    label_w = max([CHAR_W * len(r.label) for r in rows] + [CHAR_W * len(reference)]) + 20
    left, right, top, row_h = max(90.0, label_w), 24, 14, 30
    height = top + row_h * (len(rows) + 1) + 46
    xs = [0.0] + [v for r in rows for v in (r.estimate, r.low, r.high) if v is not None]
    sx = Scale(*padded(min(xs), max(xs), 0.08), left, width - right)
    bottom_y = top + row_h * (len(rows) + 1)
    body = _x_axis(sx, bottom_y, top, xlabel)
    zero = sx(0.0)
    body.append(f'<line x1="{zero:.1f}" y1="{top:.1f}" x2="{zero:.1f}" y2="{bottom_y:.1f}" stroke="#555" '
                f'stroke-dasharray="4 3"/>')
    y0 = top + row_h * 0.6
    body.append(_text(left - 10, y0 + 4, reference, "end", fill="#666"))
    body.append(f'<circle cx="{zero:.1f}" cy="{y0:.1f}" r="4" fill="none" stroke="#555"/>')
    for i, r in enumerate(rows):
        y = top + row_h * (i + 1.6)
        body.append(_text(left - 10, y + 4, r.label, "end"))
        tip = escape(f"{r.label}: {r.estimate:+.4f}" + (f" [{r.low:+.4f}, {r.high:+.4f}]" if r.low is not None else "")
                     + (f" — {r.note}" if r.note else ""))
        if r.low is not None and r.high is not None:
            a, b = sx(r.low), sx(r.high)
            body.append(f'<line x1="{a:.1f}" y1="{y:.1f}" x2="{b:.1f}" y2="{y:.1f}" stroke="{r.color}" stroke-width="2"/>')
            for p in (a, b):
                body.append(f'<line x1="{p:.1f}" y1="{y - 6:.1f}" x2="{p:.1f}" y2="{y + 6:.1f}" stroke="{r.color}" stroke-width="2"/>')
        body.append(f'<circle cx="{sx(r.estimate):.1f}" cy="{y:.1f}" r="5" fill="{r.color}"><title>{tip}</title></circle>')
    return _svg(width, height, title, body)


@dataclass
class Point:
    x: float
    y: float
    label: str
    color: str
    highlight: bool = False


def scatter_chart(points: Sequence[Point], *, title: str, xlabel: str, ylabel: str, front: bool = True,
                  width: int = 720, height: int = 340) -> str:
    """Points (configurations); highlighted ones are joined by a step line (the Pareto front)."""
    if not points:
        return _svg(width, 60, title, [_text(10, 30, "no points to plot")])
    left, right, top, bottom = 72, 20, 16, 46
    xs, ys = [p.x for p in points], [p.y for p in points]
    log_x = min(xs) > 0 and max(xs) / min(xs) > 30
    if log_x:
        sx = Scale(min(xs) / 1.3, max(xs) * 1.3, left, width - right, log=True)
    else:
        sx = Scale(*padded(min(xs), max(xs)), left, width - right)
    sy = Scale(*padded(min(ys), max(ys)), height - bottom, top)
    body = _y_axis(sy, left, width - right, ylabel) + _x_axis(sx, height - bottom, top, xlabel, grid=False)
    hi = sorted((p for p in points if p.highlight), key=lambda p: (p.x, p.y))
    if front and len(hi) > 1:
        xy = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in hi)
        body.append(f'<polyline points="{xy}" fill="none" stroke="#222" stroke-width="1.5" stroke-dasharray="5 3"/>')
    for p in points:
        r, stroke = (7, ' stroke="#111" stroke-width="2"') if p.highlight else (5, ' fill-opacity="0.75"')
        body.append(f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="{r}" fill="{p.color}"{stroke}>'
                    f"<title>{escape(p.label)}: {xlabel} {p.x:g}, {ylabel} {p.y:.4f}"
                    f"{' (Pareto front)' if p.highlight else ''}</title></circle>")
    legend, legend_h = _legend([(("★ " if p.highlight else "") + p.label, p.color) for p in points], left,
                               height + 6, width - left - right)
    return _svg(width, height + legend_h + 6, title, body + legend)


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, xlabel: str, width: int = 720) -> str:
    """Horizontal bars, longest first (parameter importances)."""
    label_w = max([CHAR_W * len(k) for k, _ in items] + [40]) + 20
    left, right, top, row_h = label_w, 60, 12, 26
    height = top + row_h * len(items) + 46
    hi = max([v for _, v in items] + [1e-12])
    sx = Scale(0.0, hi, left, width - right)
    bottom_y = top + row_h * len(items)
    body = _x_axis(sx, bottom_y, top, xlabel)
    for i, (k, v) in enumerate(items):
        y = top + row_h * i + 4
        body.append(_text(left - 10, y + 13, k, "end"))
        body.append(f'<rect x="{left:.1f}" y="{y:.1f}" width="{max(1.0, sx(v) - left):.1f}" height="{row_h - 8}" '
                    f'fill="{color(i)}"><title>{escape(k)}: {v:.3f}</title></rect>')
        body.append(_text(sx(v) + 6, y + 13, f"{v:.3f}", fill="#555"))
    return _svg(width, height, title, body)


@dataclass
class HeatRow:
    label: str
    values: list[float | None]  # one per column; None: no value (drawn grey)
    note: str = ""  # text right of the row
    missing: str = "no value"  # hover text of the cells without a value
    tips: list[str] | None = None  # hover text per cell (default: "label, column: value")


def heatmap(rows: Sequence[HeatRow], *, title: str, columns: Sequence[str], value_label: str,
            lo: float | None = None, hi: float | None = None, ends: tuple[str, str] = ("", ""),
            cell: int = 30) -> str:
    """A grid of coloured cells (rows × columns) with a colour legend below; ``lo``/``hi`` fix the colour scale
    (to share it between several heatmaps), else the values' own range; ``ends`` name the legend's two ends."""
    vals = [v for r in rows for v in r.values if v is not None and math.isfinite(v)]
    if not rows or not columns:
        return _svg(240, 60, title, [_text(10, 30, "no values to plot")])
    lo = min(vals) if lo is None and vals else (lo if lo is not None else 0.0)
    hi = max(vals) if hi is None and vals else (hi if hi is not None else 1.0)
    label_w = max([CHAR_W * len(r.label) for r in rows] + [CHAR_W * len(ends[0])]) + 14
    note_w = max([CHAR_W * len(r.note) for r in rows] + [0]) + 12
    left, top = 8 + label_w, 22
    grid_w = cell * len(columns)
    legend_w = max(150.0, float(grid_w))
    width = max(left + grid_w + note_w, left + legend_w + CHAR_W * len(ends[1]) + 16,
                left + CHAR_W * len(value_label) + 12, 220)
    body: list[str] = []
    for j, col in enumerate(columns):
        body.append(_text(left + cell * (j + 0.5), top - 7, col, "middle", 10, "#555"))

    def shade(v: float) -> str:
        return ramp(0.5 if hi == lo else (v - lo) / (hi - lo))  # type: ignore[operator]

    for i, r in enumerate(rows):
        y = top + cell * i
        body.append(_text(left - 8, y + cell / 2 + 4, r.label, "end"))
        for j in range(len(columns)):
            v = r.values[j] if j < len(r.values) else None
            tip = (r.tips[j] if r.tips is not None and j < len(r.tips) else
                   f"{r.label}, {columns[j]}: " + (f"{value_label} {v:.4f}" if v is not None else r.missing))
            fill = EMPTY if v is None or not math.isfinite(v) else shade(v)
            body.append(f'<rect x="{left + cell * j:.1f}" y="{y:.1f}" width="{cell}" height="{cell}" fill="{fill}" '
                        f'stroke="#fff" stroke-width="1.5"><title>{escape(tip)}</title></rect>')
        if r.note:
            body.append(_text(left + grid_w + 8, y + cell / 2 + 4, r.note, fill="#555"))
    # legend: the colour ramp in 40 steps, round ticks below it
    ly = top + cell * len(rows) + 16
    body.append(_text(left, ly, value_label, size=11, fill="#222"))
    steps, bar_y = 40, ly + 6
    sx = Scale(lo, hi, left, left + legend_w) if hi > lo else Scale(lo - 1, hi + 1, left, left + legend_w)
    for k in range(steps):
        x = left + legend_w * k / steps
        body.append(f'<rect x="{x:.1f}" y="{bar_y:.1f}" width="{legend_w / steps + 0.6:.1f}" height="10" '
                    f'fill="{ramp(k / (steps - 1))}"/>')
    if ends[0]:
        body.append(_text(left - 8, bar_y + 9, ends[0], "end", 10, "#555"))
    if ends[1]:
        body.append(_text(left + legend_w + 8, bar_y + 9, ends[1], size=10, fill="#555"))
    ticks = [t for t in nice_ticks(lo, hi, 4) if lo <= t <= hi] if hi > lo else [lo]
    for t in ticks:
        px = sx(t)
        body.append(f'<line x1="{px:.1f}" y1="{bar_y + 10:.1f}" x2="{px:.1f}" y2="{bar_y + 14:.1f}" stroke="#888"/>')
        body.append(_text(px, bar_y + 25, fmt_tick(t, ticks) if len(ticks) > 1 else f"{t:.4g}", "middle", 10, "#555"))
    return _svg(width, bar_y + 32, title, body)
