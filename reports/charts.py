"""Charts as inline SVG drawn on the server: no script and no library in the page, nothing to fetch, crisp in print.

Each function returns one `<svg class="chart">` as `Markup`; every text in it (command kinds, zones, verdicts)
is escaped here, so a template can place it as it is. Colours come from the page's stylesheet through CSS
classes (`s-legacy`, `s-new`, `v-open` …), so a dark theme or the triage page can restyle them. Every data
point is one element with class `mark` and a `<title>` (the browser's tooltip), which the browser test counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

__all__ = ["TimeBar", "TrendPoint", "bars", "latency_histogram", "nice_ticks", "rate_over_time", "sparkline",
           "trend_quirks", "trend_rates", "VERDICTS"]

VERDICTS = ("open", "reproduce", "retire", "noise")
_FONT = 11


@dataclass(frozen=True)
class TimeBar:
    """One bucket of the match-rate timeline."""

    start: datetime
    pairs: int
    matched: int


@dataclass(frozen=True)
class TrendPoint:
    """One report run: its match rates and quirks per verdict."""

    taken_at: datetime
    rate: float | None
    accepted_rate: float | None
    verdicts: dict[str, int]
    current: bool = False

    @property
    def label(self) -> str:
        """When, for a tooltip."""
        return "this report" if self.current else self.taken_at.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class _Frame:
    """The plot area inside a chart, and the mapping of data fractions to pixels."""

    width: int
    height: int
    left: int = 52
    right: int = 16
    top: int = 16
    bottom: int = 30

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        return self.top

    def sx(self, fraction: float) -> float:
        return self.x0 + fraction * (self.x1 - self.x0)

    def sy(self, fraction: float) -> float:
        return self.y0 - fraction * (self.y0 - self.y1)


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(name: str, label: str, frame: _Frame, body: list[str], *, points: int, css: str = "chart") -> Markup:
    return Markup(
        f'<svg class="{css}" data-chart="{escape(name)}" data-points="{points}" viewBox="0 0 {frame.width} '
        f'{frame.height}" width="{frame.width}" height="{frame.height}" role="img" aria-label="{escape(label)}" '
        f'font-size="{_FONT}">' + "".join(body) + "</svg>")


def _empty(name: str, frame: _Frame, message: str) -> Markup:
    return _svg(name, message, frame, [_text(frame.width / 2, frame.height / 2, message)], points=0)


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _text(x: float, y: float, text: str, *, anchor: str = "middle", css: str = "axis-label", dy: str = "",
          tip: str | None = None) -> str:
    shift = f' dy="{dy}"' if dy else ""
    return (f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" class="{css}"{shift}>{escape(text)}'
            + (_title(tip) if tip else "") + "</text>")


def _points(coordinates: list[tuple[float, float]]) -> str:
    return " ".join(f"{_n(x)},{_n(y)}" for x, y in coordinates)


def nice_ticks(high: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least `high`."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(int(math.ceil(high / step - 1e-9)) + 1)]


def _count(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def _pct(value: float) -> str:
    return f"{value * 100:g}%"


def _y_axis(frame: _Frame, ticks: list[float], label: Callable[[float], str], *, side: str = "left",
            grid: bool = True) -> list[str]:
    out = []
    top = ticks[-1] or 1.0
    for tick in ticks:
        y = frame.sy(tick / top)
        if grid:
            out.append(f'<line class="grid" x1="{_n(frame.x0)}" x2="{_n(frame.x1)}" y1="{_n(y)}" y2="{_n(y)}"/>')
        if side == "left":
            out.append(_text(frame.x0 - 6, y, label(tick), anchor="end", dy="0.32em"))
        else:
            out.append(_text(frame.x1 + 6, y, label(tick), anchor="start", dy="0.32em"))
    return out


def _time_axis(frame: _Frame, first: datetime, last: datetime, place: Callable[[datetime], float]) -> list[str]:
    """Up to five labelled times along the bottom, evenly spaced between the first and the last."""
    span = last - first
    fmt = "%m-%d %H:%M" if span <= timedelta(days=2) else "%m-%d" if span <= timedelta(days=120) else "%Y-%m-%d"
    if span <= timedelta(0):
        return [_text(place(first), frame.y0 + 16, first.strftime(fmt))]
    steps = 4 if frame.width >= 400 else 2
    out = []
    for i in range(steps + 1):
        when = first + span * (i / steps)
        out.append(_text(place(when), frame.y0 + 16, when.strftime(fmt), anchor="middle"))
    return out


def _time_placer(frame: _Frame, first: datetime, last: datetime, pad: float) -> Callable[[datetime], float]:
    span = (last - first).total_seconds()

    def place(when: datetime) -> float:
        if span <= 0:
            return frame.sx(0.5)
        return frame.sx(pad + (1 - 2 * pad) * (when - first).total_seconds() / span)
    return place


def rate_over_time(points: list[TimeBar], bucket: str, *, width: int = 1100, height: int = 240) -> Markup:
    """Pairs per bucket (bars, right axis) and the match rate in each (line and dots, left axis)."""
    frame = _Frame(width, height, right=48)
    if not points:
        return _empty("rate-over-time", frame, "no pairs in scope")
    step = timedelta(days=1) if bucket == "day" else timedelta(hours=1)
    first, last = points[0].start, points[-1].start
    slot = (frame.x1 - frame.x0) / max(1, int((last - first) / step) + 1)

    def place(when: datetime) -> float:
        return frame.x0 + slot * ((when - first) / step + 0.5)

    volume = nice_ticks(max(p.pairs for p in points))
    body = _y_axis(frame, [0.0, 0.25, 0.5, 0.75, 1.0], _pct)
    body += _y_axis(frame, volume, _count, side="right", grid=False)
    body.append(_text(4, frame.y1 - 6, "match rate", anchor="start", css="axis-title"))
    body.append(_text(width - 4, frame.y1 - 6, "pairs", anchor="end", css="axis-title"))
    fmt = "%Y-%m-%d" if bucket == "day" else "%Y-%m-%d %H:00"
    bar_width = max(1.0, slot * 0.7)
    for p in points:
        h = (frame.y0 - frame.y1) * p.pairs / (volume[-1] or 1)
        body.append(f'<rect class="volume" x="{_n(place(p.start) - bar_width / 2)}" y="{_n(frame.y0 - h)}" '
                    f'width="{_n(bar_width)}" height="{_n(h)}"/>')
    shown = [(p, place(p.start), frame.sy(p.matched / p.pairs)) for p in points if p.pairs]
    if len(shown) > 1:
        body.append(f'<polyline class="rate-line" points="{_points([(x, y) for _p, x, y in shown])}"/>')
    radius = 2.6 if len(shown) <= 80 else 1.6
    for p, x, y in shown:
        body.append(f'<circle class="mark rate-dot" cx="{_n(x)}" cy="{_n(y)}" r="{radius}">'
                    + _title(f"{p.start.strftime(fmt)} UTC: {p.matched / p.pairs:.2%} of {p.pairs:,} pairs matched")
                    + "</circle>")
    body += _time_axis(frame, first, last, place)
    return _svg("rate-over-time", f"match rate per {bucket}", frame, body, points=len(shown))


def bars(name: str, items: list[tuple[str, float]], *, classes: list[str] | None = None, width: int = 540,
         label_width: int = 130) -> Markup:
    """Horizontal bars, one per category, each labelled with its value."""
    row = 26
    frame = _Frame(width, max(60, 8 + row * len(items) + 24), left=label_width, right=60, top=8, bottom=24)
    if not items:
        return _empty(name, frame, "nothing to show")
    ticks = nice_ticks(max(v for _k, v in items))
    top = ticks[-1] or 1.0
    body: list[str] = []
    for tick in ticks:
        x = frame.sx(tick / top)
        body.append(f'<line class="grid" x1="{_n(x)}" x2="{_n(x)}" y1="{_n(frame.y1)}" y2="{_n(frame.y0)}"/>')
        body.append(_text(x, frame.y0 + 15, _count(tick)))
    for i, (key, value) in enumerate(items):
        y = frame.y1 + i * row + 4
        w = (frame.x1 - frame.x0) * value / top
        css = classes[i] if classes else "bar"
        shown = key if len(key) <= 20 else key[:19] + "…"
        body.append(_text(frame.x0 - 8, y + row / 2 - 4, shown, anchor="end", css="cat-label", dy="0.32em", tip=key))
        body.append(f'<rect class="mark {escape(css)}" x="{_n(frame.x0)}" y="{_n(y)}" width="{_n(max(w, 0.5))}" '
                    f'height="{row - 8}" rx="2">' + _title(f"{key}: {value:,g}") + "</rect>")
        body.append(_text(frame.x0 + w + 5, y + row / 2 - 4, f"{value:,g}", anchor="start", css="value-label",
                          dy="0.32em"))
    return _svg(name, name.replace("-", " "), frame, body, points=len(items))


def _merge_bins(histogram: list[tuple[float, float, int]]) -> list[tuple[float, float, float]]:
    """Pairs of adjacent roll-up bins (9 % wide each) as one bar, with its share of the target's pairs."""
    total = sum(n for _l, _u, n in histogram) or 1
    rows: list[tuple[float, float, int]] = []
    for lower, upper, n in histogram:
        # bins are 2^(1/8) apart; two of them make a 2^(1/4) band
        if rows and math.log2(upper / rows[-1][0]) <= 0.25 + 1e-9:
            rows[-1] = (rows[-1][0], upper, rows[-1][2] + n)
        else:
            rows.append((lower, upper, n))
    return [(lower, upper, n / total) for lower, upper, n in rows]


def latency_histogram(histograms: dict[str, list[tuple[float, float, int]]],
                      percentiles: dict[str, dict[str, float | None]], *, width: int = 540,
                      height: int = 250) -> Markup:
    """Both targets' latency distributions on a log scale: share of pairs per band, p50/p95/p99 marked."""
    frame = _Frame(width, height, top=40)
    filled = {t: h for t, h in histograms.items() if h}
    if not filled:
        return _empty("latency", frame, "no latency recorded")
    lo = math.log10(min(b[0] for h in filled.values() for b in h))
    hi = math.log10(max(b[1] for h in filled.values() for b in h))
    if hi - lo < 1:
        lo, hi = lo - 0.5, hi + 0.5

    def place(ms: float) -> float:
        return frame.sx((math.log10(ms) - lo) / (hi - lo))

    merged = {target: _merge_bins(histogram) for target, histogram in filled.items()}
    ticks = nice_ticks(max(share for h in merged.values() for _l, _u, share in h) * 100)
    body = _y_axis(frame, ticks, lambda v: f"{v:g}%")
    body.append(_text(4, frame.y1 - 28, "pairs", anchor="start", css="axis-title"))
    for decade in range(math.floor(lo), math.ceil(hi) + 1):
        for m in (1, 2, 5):
            value = m * 10.0 ** decade
            if lo <= math.log10(value) <= hi:
                x = place(value)
                body.append(f'<line class="grid" x1="{_n(x)}" x2="{_n(x)}" y1="{_n(frame.y1)}" y2="{_n(frame.y0)}"/>')
                body.append(_text(x, frame.y0 + 16, f"{value:g} ms" if m == 1 else f"{value:g}"))
    marks = 0
    for target in ("legacy", "new"):
        for lower, upper, share in merged.get(target, []):
            h = (frame.y0 - frame.y1) * share * 100 / (ticks[-1] or 1)
            body.append(f'<rect class="mark hist s-{target}" x="{_n(place(lower))}" y="{_n(frame.y0 - h)}" '
                        f'width="{_n(max(0.8, place(upper) - place(lower)))}" height="{_n(h)}">'
                        + _title(f"{target}: {share:.1%} of pairs took {lower:,.3g}–{upper:,.3g} ms") + "</rect>")
            marks += 1
    for row, target in enumerate(("legacy", "new")):
        # Percentiles on (nearly) one spot share a label, "p95/p99", rather than printing over each other.
        spots: list[tuple[float, list[str], list[str]]] = []
        for name, value in percentiles.get(target, {}).items():
            if value is None or value <= 0:
                continue
            x = place(min(max(value, 10 ** lo), 10 ** hi))
            if spots and x - spots[-1][0] < 26:
                spots[-1][1].append(name)
                spots[-1][2].append(f"{name} {value:,.1f} ms")
            else:
                spots.append((x, [name], [f"{name} {value:,.1f} ms"]))
        y = frame.y1 - 26 + row * 12
        for x, names, tips in spots:
            body.append(f'<line class="pct s-{target}" x1="{_n(x)}" x2="{_n(x)}" y1="{_n(y + 3)}" '
                        f'y2="{_n(frame.y0)}"/>')
            body.append(_text(x + 3, y + 1, "/".join(names), anchor="start", css=f"pct-label s-{target}",
                              tip=f"{target}: " + ", ".join(tips)))
    return _svg("latency", "latency distribution of both targets", frame, body, points=marks)


def trend_rates(points: list[TrendPoint], *, width: int = 540, height: int = 220) -> Markup:
    """Match rate (and with noise and retired quirks accepted) at each report run."""
    frame = _Frame(width, height)
    if not points:
        return _empty("trend-rates", frame, "no report runs")
    place = _time_placer(frame, points[0].taken_at, points[-1].taken_at, pad=0.03)
    body = _y_axis(frame, [0.0, 0.25, 0.5, 0.75, 1.0], _pct)
    marks = 0
    for attr, css, what in (("accepted_rate", "accepted", "accepted"), ("rate", "rate", "match rate")):
        line = [(place(p.taken_at), frame.sy(getattr(p, attr)), p) for p in points if getattr(p, attr) is not None]
        if len(line) > 1:
            body.append(f'<polyline class="{css}-line" points="{_points([(x, y) for x, y, _p in line])}"/>')
        for x, y, p in line:
            body.append(f'<circle class="mark {css}-dot{" current" if p.current else ""}" cx="{_n(x)}" cy="{_n(y)}" '
                        f'r="3">' + _title(f"{p.label}: {what} {getattr(p, attr):.2%}") + "</circle>")
            marks += 1
    body += _time_axis(frame, points[0].taken_at, points[-1].taken_at, place)
    return _svg("trend-rates", "match rate across report runs", frame, body, points=marks)


def trend_quirks(points: list[TrendPoint], *, width: int = 540, height: int = 220) -> Markup:
    """Quirks per verdict at each report run, stacked with `open` on top: the burn-down."""
    frame = _Frame(width, height)
    if not points:
        return _empty("trend-quirks", frame, "no report runs")
    place = _time_placer(frame, points[0].taken_at, points[-1].taken_at, pad=0.03)
    ticks = nice_ticks(max(sum(p.verdicts.get(v, 0) for v in VERDICTS) for p in points) or 1)
    top = ticks[-1] or 1.0
    body = _y_axis(frame, ticks, _count)
    body.append(_text(4, frame.y1 - 6, "quirks", anchor="start", css="axis-title"))
    xs = [place(p.taken_at) for p in points]
    edges = [xs[0] - 10, xs[0] + 10] if len(points) == 1 else xs  # one run: a short band, not a line
    below = [0] * len(points)
    marks = 0
    for verdict in reversed(VERDICTS):
        above = [b + p.verdicts.get(verdict, 0) for b, p in zip(below, points, strict=True)]
        if above != below:
            upper, lower = (above * 2, below * 2) if len(points) == 1 else (above, below)
            outline = [(x, frame.sy(v / top)) for x, v in zip(edges, upper, strict=True)]
            outline += [(x, frame.sy(v / top)) for x, v in reversed(list(zip(edges, lower, strict=True)))]
            body.append(f'<polygon class="area v-{verdict}" points="{_points(outline)}"/>')
            for p, x, total in zip(points, xs, above, strict=True):
                n = p.verdicts.get(verdict, 0)
                if n:
                    body.append(f'<circle class="mark dot v-{verdict}" cx="{_n(x)}" cy="{_n(frame.sy(total / top))}" '
                                f'r="2.6">' + _title(f"{p.label}: {n} {verdict}") + "</circle>")
                    marks += 1
        below = above
    body += _time_axis(frame, points[0].taken_at, points[-1].taken_at, place)
    return _svg("trend-quirks", "quirks per verdict across report runs", frame, body, points=marks)


def sparkline(values: list[int], *, label: str, width: int = 120, height: int = 22) -> Markup:
    """A quirk's differences per bucket of the window, as tiny bars."""
    frame = _Frame(width, height, left=1, right=1, top=1, bottom=1)
    high = max(values, default=0) or 1
    slot = (frame.x1 - frame.x0) / max(1, len(values))
    body = [f'<line class="baseline" x1="{_n(frame.x0)}" x2="{_n(frame.x1)}" y1="{_n(frame.y0)}" y2="{_n(frame.y0)}"/>']
    # One path for all bars: a quirk table of hundreds of rows stays small.
    path = []
    for i, value in enumerate(values):
        if value:
            h = max(1.0, (frame.y0 - frame.y1) * value / high)
            path.append(f"M{_n(frame.x0 + i * slot)} {_n(frame.y0)}v-{_n(h)}h{_n(max(0.8, slot * 0.8))}v{_n(h)}z")
    if path:
        body.append(f'<path class="spark" d="{"".join(path)}"/>')
    return _svg("sparkline", label, frame, body + [_title(label)], points=sum(1 for v in values if v),
                css="chart spark-chart")
