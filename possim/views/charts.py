"""Small SVG charts for possim's HTML pages: bars, steps over time with fault windows, a
histogram, a heat strip, and a text histogram for the terminal.

The pages are self-contained (nothing fetched), printed as often as projected, and read in
English and Chinese, so every chart here is plain SVG built as a string, with axis titles
and tick labels, and means nothing by colour alone: series differ by dash and marker and
are named in a legend, fault windows are hatched and labelled, bars carry their value as
text. The callers translate every label (``Tr``); this module draws what it is given.
Each chart scales to its container through its ``viewBox``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

#: Fills and strokes that stay distinct in grey: dark, mid and light, never colour alone.
INK, MID, LIGHT, GRID = "#1b1f24", "#57606a", "#d0d7de", "#eaeef2"
BAR = "#4a5560"
#: Dash patterns of successive series (the legend shows each with its name).
DASHES = ("", "6 3", "2 3", "8 3 2 3")
MARKERS = ("circle", "square", "triangle", "diamond")
FONT = 12
_HATCH = ("<pattern id='{id}' patternUnits='userSpaceOnUse' width='6' height='6' patternTransform='rotate(45)'>"
          "<rect width='6' height='6' fill='#f6f8fa'/><line x1='0' y1='0' x2='0' y2='6' stroke='{ink}' "
          "stroke-width='2'/></pattern>")


@dataclass(frozen=True)
class Axes:
    """A chart's frame: title, axis titles, size in user units, margins for the tick labels."""

    title: str
    x_title: str
    y_title: str
    width: int = 640
    height: int = 300
    left: int = 64
    right: int = 16
    top: int = 30
    bottom: int = 52

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom


@dataclass(frozen=True)
class Series:
    """One line of a step chart: its name (for the legend) and its (x, y) points, x ascending."""

    name: str
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Window:
    """A span of x to hatch and label: a partition, a host crash."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Cell:
    """One cell of a heat strip: its value (0 is blank), what hovering says, where a click goes."""

    value: float
    tip: str
    href: str = ""
    ident: str = ""


@dataclass
class _Svg:
    axes: Axes
    kind: str
    parts: list[str] = field(default_factory=list)

    def text(self, x: float, y: float, s: str, anchor: str = "middle", cls: str = "", extra: str = "") -> None:
        c = f" class='{cls}'" if cls else ""
        self.parts.append(f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}'{c}{extra}>{_e(s)}</text>")

    def done(self, defs: str = "", height: int | None = None) -> str:
        a = self.axes
        head = (f"<svg class='chart {self.kind}' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {a.width} "
                f"{height or a.height}' role='img' aria-label='{_e(a.title)}' font-size='{FONT}'>"
                f"<title>{_e(a.title)}</title>" + (f"<defs>{defs}</defs>" if defs else ""))
        return head + "".join(self.parts) + "</svg>"


def _e(s: str) -> str:
    return html.escape(s, quote=True)


def ticks(top: float, most: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (1, 2 or 5 times a power of ten apart)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def text_width(s: str) -> float:
    """Roughly how wide ``s`` is at the charts' font size: Latin about 7 units, CJK a full 12."""
    return sum(FONT if ord(ch) > 0x2E80 else 7.0 for ch in s)


def _wrap(s: str, width: float) -> list[str]:
    """``s`` on one line when it fits ``width``, else on two, split at the space nearest the middle."""
    if text_width(s) <= width or " " not in s:
        return [s]
    spaces = [i for i, ch in enumerate(s) if ch == " "]
    cut = min(spaces, key=lambda i: abs(i - len(s) / 2))
    return [s[:cut], s[cut + 1:]]


def _label(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() or abs(v) >= 100 else f"{v:,.2f}".rstrip("0").rstrip(".")


def _frame(svg: _Svg, ys: list[float]) -> None:
    """Title, y grid with tick labels, axis lines and the two axis titles."""
    a = svg.axes
    svg.text(a.width / 2, 18, a.title, cls="chart-title", extra=" font-weight='700'")
    top = ys[-1] or 1.0
    for v in ys:
        y = a.top + a.plot_height * (1 - v / top)
        svg.parts.append(f"<line x1='{a.left}' y1='{y:.1f}' x2='{a.width - a.right}' y2='{y:.1f}' stroke='{GRID}'/>")
        svg.text(a.left - 6, y + 4, _label(v), anchor="end", cls="tick y")
    bottom = a.top + a.plot_height
    svg.parts.append(f"<line x1='{a.left}' y1='{a.top}' x2='{a.left}' y2='{bottom}' stroke='{INK}'/>"
                     f"<line x1='{a.left}' y1='{bottom}' x2='{a.width - a.right}' y2='{bottom}' stroke='{INK}'/>")
    svg.text(a.left + a.plot_width / 2, a.height - 6, a.x_title, cls="axis-title x")
    svg.text(14, a.top + a.plot_height / 2, a.y_title, cls="axis-title y",
             extra=f" transform='rotate(-90 14 {a.top + a.plot_height / 2:.1f})'")


def bar_chart(labels: Sequence[str], values: Sequence[float], axes: Axes,
              shown: Sequence[str] | None = None) -> str:
    """One bar per label, its value written above it (``shown``: how, e.g. as money); one bar is a chart too."""
    svg = _Svg(axes, "bars")
    ys = ticks(max(values, default=0.0))
    _frame(svg, ys)
    top = ys[-1] or 1.0
    slot = axes.plot_width / max(len(values), 1)
    width = min(slot * 0.6, 90.0)
    bottom = axes.top + axes.plot_height
    for i, (name, value) in enumerate(zip(labels, values, strict=True)):
        h = axes.plot_height * value / top
        x = axes.left + slot * i + (slot - width) / 2
        svg.parts.append(f"<rect class='bar' x='{x:.1f}' y='{bottom - h:.1f}' width='{width:.1f}' height='{h:.1f}' "
                         f"fill='{BAR}' data-value='{value:g}'><title>{_e(name)}: "
                         f"{_e(shown[i] if shown else _label(value))}</title></rect>")
        svg.text(x + width / 2, bottom - h - 5, shown[i] if shown else _label(value), cls="value")
        for j, line in enumerate(_wrap(name, slot - 6)):
            svg.text(x + width / 2, bottom + 20 + 14 * j, line, cls="tick x")
    return svg.done()


def step_chart(series: Sequence[Series], windows: Sequence[Window], x_end: float, axes: Axes) -> str:
    """Cumulative counts over time as steps, fault windows hatched and labelled, a legend below the x axis
    (``axes.bottom`` leaves room for ticks, legend and axis title: 72 or more)."""
    svg = _Svg(axes, "steps")
    ys = ticks(max((y for s in series for _, y in s.points), default=0.0))
    _frame(svg, ys)
    top, right = ys[-1] or 1.0, x_end if x_end > 0 else 1.0
    bottom = axes.top + axes.plot_height

    def px(x: float) -> float:
        return axes.left + axes.plot_width * min(max(x, 0.0), right) / right

    def py(y: float) -> float:
        return axes.top + axes.plot_height * (1 - y / top)

    free = axes.left - 1.0  # where the last window label ended: a label that would overlap it is left out
    for w in merged(windows):
        x1, x2 = px(w.start), max(px(w.end), px(w.start) + 2)
        svg.parts.append(f"<rect class='window' x='{x1:.1f}' y='{axes.top}' width='{x2 - x1:.1f}' "
                         f"height='{axes.plot_height:.1f}' fill='url(#hatch)' fill-opacity='.7' stroke='{MID}'>"
                         f"<title>{_e(w.label)}</title></rect>")
        wide = text_width(w.label)
        start = min(x1 + 3, axes.width - axes.right - wide)
        if start > free:
            svg.text(start, axes.top + 13, w.label, anchor="start", cls="window-label", extra=" font-style='italic'")
            free = start + wide + 6
    for x in ticks(right, 6):
        if x <= right + 1e-9:
            svg.text(px(x), bottom + 20, _label(x), cls="tick x")
    for i, s in enumerate(series):
        d, y_now = [f"M{px(0):.1f},{py(0):.1f}"], 0.0
        for x, y in s.points:
            d.append(f"H{px(x):.1f}V{py(y):.1f}")
            y_now = y
        d.append(f"H{px(right):.1f}")
        dash = f" stroke-dasharray='{DASHES[i % len(DASHES)]}'" if DASHES[i % len(DASHES)] else ""
        svg.parts.append(f"<path class='series' d='{''.join(d)}' fill='none' stroke='{INK}' stroke-width='2'{dash}>"
                         f"<title>{_e(s.name)}: {_label(y_now)}</title></path>")
    _legend(svg, [s.name for s in series])
    return svg.done(_HATCH.format(id="hatch", ink=LIGHT))


def merged(windows: Sequence[Window]) -> list[Window]:
    """Windows by start, overlapping ones of the same label as one (two shards crashing at once)."""
    out: list[Window] = []
    for w in sorted(windows, key=lambda w: (w.start, w.end)):
        same = next((i for i in range(len(out) - 1, -1, -1) if out[i].label == w.label), None)
        if same is not None and w.start <= out[same].end:
            out[same] = Window(out[same].start, max(out[same].end, w.end), w.label)
        else:
            out.append(w)
    return out


def _legend(svg: _Svg, names: list[str]) -> None:
    """Each series' dash and name, in a row at the top right of the plot."""
    a = svg.axes
    x: float = a.left + 8
    y = a.top + a.plot_height + 36
    for i, name in enumerate(names):
        dash = DASHES[i % len(DASHES)]
        d = f" stroke-dasharray='{dash}'" if dash else ""
        svg.parts.append(f"<line x1='{x}' y1='{y - 4}' x2='{x + 26}' y2='{y - 4}' stroke='{INK}' stroke-width='2'{d}/>")
        svg.text(x + 30, y, name, anchor="start", cls="legend")
        x += 46 + text_width(name)


def histogram(edges: Sequence[float], counts: Sequence[int], axes: Axes) -> str:
    """Bins side by side (``edges`` has one more entry than ``counts``), the count on each bin's hover."""
    svg = _Svg(axes, "histogram")
    ys = ticks(max(counts, default=0))
    _frame(svg, ys)
    top = ys[-1] or 1.0
    bottom = axes.top + axes.plot_height
    n = max(len(counts), 1)
    slot = axes.plot_width / n
    for i, c in enumerate(counts):
        h = axes.plot_height * c / top
        x = axes.left + slot * i
        svg.parts.append(f"<rect class='bin' x='{x + 1:.1f}' y='{bottom - h:.1f}' width='{max(slot - 2, 1):.1f}' "
                         f"height='{h:.1f}' fill='{BAR}' data-value='{c}'><title>{_label(edges[i])}-"
                         f"{_label(edges[i + 1])}: {c}</title></rect>")
    every = max(1, math.ceil(n / 8))
    shown = list(range(0, n + 1, every))
    if shown[-1] != n and (n - shown[-1]) * slot > 48:
        shown.append(n)  # the upper edge of the last bin: the slowest value when the tail is folded into it
    for i in shown:
        svg.text(axes.left + slot * i, bottom + 20, _label(edges[i]), cls="tick x")
    return svg.done()


def heat_strip(cells: Sequence[Cell], axes: Axes, per_row: int = 50, legend: Sequence[str] = ()) -> str:
    """One cell per item, worst first, in rows of ``per_row``: darker is worse, and a cell with any
    value is hatched too, so print and grey screens tell "some" from "none". ``legend``: the words
    for the hatched and the blank cell."""
    svg = _Svg(axes, "heat")
    svg.text(axes.width / 2, 18, axes.title, cls="chart-title", extra=" font-weight='700'")
    top = max((c.value for c in cells), default=0.0) or 1.0
    size = axes.plot_width / per_row
    for i, c in enumerate(cells):
        x = axes.left + size * (i % per_row)
        y = axes.top + size * (i // per_row)
        shade = 235 - int(175 * c.value / top) if c.value > 0 else 255
        fill = f"rgb({shade},{shade},{shade})"
        rect = (f"<rect x='{x:.1f}' y='{y:.1f}' width='{size - 1:.1f}' height='{size - 1:.1f}' fill='{fill}' "
                f"stroke='{LIGHT}'/>")
        if c.value > 0:
            rect += (f"<rect x='{x:.1f}' y='{y:.1f}' width='{size - 1:.1f}' height='{size - 1:.1f}' "
                     f"fill='url(#heat-hatch)'/>")
        ident = f" id='{_e(c.ident)}'" if c.ident else ""
        body = f"<g class='cell'{ident} data-value='{c.value:g}'><title>{_e(c.tip)}</title>{rect}</g>"
        svg.parts.append(f"<a href='{_e(c.href)}'>{body}</a>" if c.href else body)
    rows = math.ceil(len(cells) / per_row)
    y = axes.top + size * rows + 18
    svg.text(axes.left, y, axes.x_title, anchor="start", cls="axis-title x")
    if legend:
        y += 20
        x = float(axes.left)
        svg.parts.append(f"<rect x='{x:.1f}' y='{y - 11}' width='12' height='12' fill='#888'/>"
                         f"<rect x='{x:.1f}' y='{y - 11}' width='12' height='12' fill='url(#heat-hatch)'/>")
        svg.text(x + 16, y, legend[0], anchor="start", cls="legend")
        if len(legend) > 1:
            x2 = x + 16 + text_width(legend[0]) + 20
            svg.parts.append(f"<rect x='{x2:.1f}' y='{y - 11}' width='12' height='12' fill='#fff' stroke='{MID}'/>")
            svg.text(x2 + 16, y, legend[1], anchor="start", cls="legend")
    return svg.done(_HATCH.format(id="heat-hatch", ink="#000").replace("fill='#f6f8fa'", "fill='none'"), int(y + 12))


def buckets(values_us: Sequence[tuple[int, int]], bins: int = 12, cap: float | None = None
            ) -> tuple[list[float], list[int]]:
    """(value, count) pairs (as an HdrHistogram iterates them) into about ``bins`` equal bins: edges,
    counts. Values above ``cap`` are counted in the last bin (a long tail would squash the rest)."""
    if not values_us:
        return [0.0, 1.0], [0]
    hi: float = max(v for v, _ in values_us)
    hi = min(hi, cap) if cap is not None else hi
    lo = min(v for v, _ in values_us)
    width = ticks(max(hi - lo, 1) / bins, 1)[-1] or 1.0
    start = math.floor(lo / width) * width
    n = max(1, math.ceil((hi - start) / width + 1e-9))
    if start + n * width <= hi:
        n += 1
    counts = [0] * n
    for v, c in values_us:
        counts[min(int((v - start) // width), n - 1)] += c
    return [start + i * width for i in range(n + 1)], counts


def text_histogram(edges: Sequence[float], counts: Sequence[int], unit: str, width: int = 40) -> list[str]:
    """A histogram for the terminal: one line per bin, "low-high unit | ##### count"."""
    top = max(counts, default=0) or 1
    spans = [f"{_label(edges[i])}-{_label(edges[i + 1])} {unit}" for i in range(len(counts))]
    pad = max((len(s) for s in spans), default=0)
    return [f"{s.rjust(pad)} | {'#' * (round(width * c / top) if c else 0):<{width}} {c}"
            for s, c in zip(spans, counts, strict=True)]
