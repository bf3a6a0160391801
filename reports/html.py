"""The report as one self-contained HTML file: styles and charts inline, no script, nothing fetched.

Charts are SVG drawn here (`reports.charts`), not by a JavaScript library: the page needs no script at all,
so its Content-Security-Policy forbids every script and every request, a payload that escaped escaping
still could not run or call out, and the file prints as crisply as it shows. Payload values reach the page
only through Jinja's autoescaping or `markupsafe.escape`; the report's figures also ride along as JSON in a
`<script type="application/json">` block (Jinja's `tojson`, which escapes `<`, `>`, `&` and `'`), for anyone
who wants to lift numbers out of a saved report.
"""

from __future__ import annotations

import difflib
import json
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from reports import charts
from reports.query import Report
from rules.catalogue import Example, Quirk

__all__ = ["render_html", "write_html", "environment", "value_diff", "render_value"]

_ABSENT = Markup('<span class="absent">(absent)</span>')
# Larger values are compared line by line only: a character diff is quadratic in the worst case.
_CHAR_DIFF_LIMIT = 4000


def environment() -> Environment:
    """The Jinja environment for report templates: autoescape on everywhere, undefined names are errors."""
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=select_autoescape(default=True,
                      default_for_string=True), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(rate=_rate, count=_count, ms=_ms, when=_when, delta=_delta)
    return env


def render_value(value: Any) -> str:
    """A payload value as JSON text: strings quoted (so padding and type show), containers indented."""
    indent = 2 if isinstance(value, (dict, list)) and value else None
    return json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=False, default=str)


def _visible(text: str, *, marked: bool = False, multiline: bool = False, line_start: bool = False) -> Markup:
    """Escaped text with invisible characters wrapped for the stylesheet to show; in a marked difference, spaces
    too (but not the indentation of an indented value, where every line starts with them)."""
    out: list[str] = []
    run: list[str] = []
    kind = ""
    indenting = multiline and line_start

    def flush() -> None:
        if not run:
            return
        chunk = escape("".join(run))
        if kind == "space":
            out.append(f'<span class="ws">{chunk}</span>')
        elif kind == "odd":
            names = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '')}".strip() for c in run)
            out.append(f'<span class="odd" title="{escape(names)}">{chunk}</span>')
        else:
            out.append(str(chunk))
        run.clear()

    for char in text:
        category = unicodedata.category(char)
        if char == " ":
            now = "space" if marked and not indenting else "text"
        else:
            indenting = char == "\n" and multiline
            now = "odd" if category in ("Zs", "Cf", "Cc", "Zl", "Zp") and char != "\n" else "text"
        if now != kind:
            flush()
            kind = now
        run.append(char)
    flush()
    return Markup("".join(out))


def _mark(text: str, tag: str, *, dots: bool = True, multiline: bool = False, line_start: bool = False) -> str:
    """A marked difference. `dots`: show its spaces (a small difference); a value replaced whole shows none."""
    if not text:
        return ""
    return f'<{tag} class="diff">{_visible(text, marked=dots, multiline=multiline, line_start=line_start)}</{tag}>'


def _line_start(text: str, index: int) -> bool:
    return index == 0 or text[index - 1] == "\n"


def _char_diff(a: str, b: str, *, multiline: bool = False) -> tuple[str, str]:
    """Both texts with what differs marked; texts that share little are marked whole, not as confetti."""
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    one, two = a[head:len(a) - tail], b[head:len(b) - tail]
    left, right = [str(_visible(a[:head]))], [str(_visible(b[:head]))]
    matcher = difflib.SequenceMatcher(None, one, two, autojunk=False)
    if one and two and matcher.ratio() < 0.5:
        left.append(_mark(one, "del", dots=False))
        right.append(_mark(two, "ins", dots=False))
    else:
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                left.append(str(_visible(one[i1:i2])))
                right.append(str(_visible(two[j1:j2])))
            else:
                left.append(_mark(one[i1:i2], "del", multiline=multiline, line_start=_line_start(a, head + i1)))
                right.append(_mark(two[j1:j2], "ins", multiline=multiline, line_start=_line_start(b, head + j1)))
    left.append(str(_visible(a[len(a) - tail:])))
    right.append(str(_visible(b[len(b) - tail:])))
    return "".join(left), "".join(right)


def value_diff(legacy: str, new: str) -> tuple[Markup, Markup]:
    """Both values' text, escaped, with what differs marked: `<del>` on the legacy side, `<ins>` on the new.

    Lines are matched first; inside a changed run of lines, characters are (when short enough), so a trailing
    space, a changed digit or an added `Z` is what lights up, not the whole value.
    """
    if len(legacy) + len(new) <= _CHAR_DIFF_LIMIT and "\n" not in legacy and "\n" not in new:
        left, right = _char_diff(legacy, new)
        return Markup(left), Markup(right)
    a, b = legacy.splitlines(keepends=True), new.splitlines(keepends=True)
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old, fresh = "".join(a[i1:i2]), "".join(b[j1:j2])
        if op == "equal":
            left.append(str(_visible(old)))
            right.append(str(_visible(fresh)))
        elif op == "replace" and len(old) + len(fresh) <= _CHAR_DIFF_LIMIT:
            one, two = _char_diff(old, fresh, multiline=True)
            left.append(one)
            right.append(two)
        else:
            left.append(_mark(old, "del", dots=False))
            right.append(_mark(fresh, "ins", dots=False))
    return Markup("".join(left)), Markup("".join(right))


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _example(quirk: Quirk, example: Example) -> dict[str, Any]:
    """One example, ready for the template: both sides' marked-up text and their JSON types."""
    legacy_absent, new_absent = quirk.change == "added", quirk.change == "removed"
    if legacy_absent or new_absent:
        legacy = _ABSENT if legacy_absent else Markup(_visible(render_value(example.legacy)))
        new = _ABSENT if new_absent else Markup(_visible(render_value(example.new)))
    else:
        legacy, new = value_diff(render_value(example.legacy), render_value(example.new))
    types = (_type(example.legacy), _type(example.new))
    return {"token": example.token, "command": example.command, "path": example.path, "legacy": legacy, "new": new,
            "types": types if types[0] != types[1] and not (legacy_absent or new_absent) else None}


def _rate(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _count(value: int | float | None) -> str:
    return "–" if value is None else f"{value:,}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    return "–" if value is None else value.strftime(fmt)


def _delta(now: float | None, before: float | None) -> str:
    """A change of rate in percentage points, signed; empty when either side is unknown."""
    if now is None or before is None:
        return ""
    points = (now - before) * 100
    return "±0.00 pts" if abs(points) < 0.005 else f"{points:+.2f} pts"


def _rate_class(value: float | None) -> str:
    if value is None:
        return "na"
    return "good" if value >= 0.995 else "fair" if value >= 0.95 else "poor"


def _buckets(report: Report) -> list[datetime]:
    """Every bucket start of the window, gaps included, so each quirk's sparkline shares one time axis."""
    if report.first_pair is None or report.last_pair is None:
        return []
    step = timedelta(days=1) if report.bucket == "day" else timedelta(hours=1)
    count = int((report.last_pair - report.first_pair) / step) + 1
    return [report.first_pair + step * i for i in range(min(count, 2000))]


def _spark_values(report: Report, buckets: list[datetime], timeline: list[tuple[datetime, int]]) -> list[int]:
    index = {start: i for i, start in enumerate(buckets)}
    values = [0] * len(buckets)
    for when, n in timeline:
        start = when.replace(hour=0) if report.bucket == "day" else when
        if start in index:
            values[index[start]] += n
    return values


def _window(report: Report) -> dict[str, Any]:
    if report.first_pair is None or report.last_pair is None:
        return {"text": "no pairs in scope", "buckets": 0}
    step = timedelta(days=1) if report.bucket == "day" else timedelta(hours=1)
    end = report.last_pair + step
    count = int((end - report.first_pair) / step)
    return {"text": f"{_when(report.first_pair, '%Y-%m-%d %H:%M')} – {_when(end)}",
            "buckets": count, "unit": report.bucket + ("s" if count != 1 else "")}


def _context(report: Report) -> dict[str, Any]:
    """Everything the template shows, derived from the one Report."""
    buckets = _buckets(report)
    accepted_by_command = {m.name: m for m in report.accepted_by_command}
    trend = [charts.TrendPoint(s.taken_at, s.rate, s.accepted_rate, s.verdicts) for s in report.trend]
    trend.append(charts.TrendPoint(report.generated_at, report.overall.rate, report.accepted.rate, report.verdicts,
                                   current=True))
    verdict_items = [(v, float(report.verdicts.get(v, 0))) for v in charts.VERDICTS]
    by_command = sorted(report.differences_by_command.items(), key=lambda kv: (-kv[1], kv[0]))
    quirks = []
    for line in report.quirks:
        q = line.quirk
        values = _spark_values(report, buckets, line.timeline)
        quirks.append({
            "line": line, "quirk": q, "anchor": f"quirk-{q.id}",
            "spark": charts.sparkline(values, label=f"{q.id}: differences per {report.bucket}"),
            "spark_wide": charts.sparkline(values, label=f"{q.id}: differences per {report.bucket}", width=360,
                                           height=40),
            "zones": sorted(q.zones.items(), key=lambda kv: (-kv[1], kv[0])),
            "examples": [_example(q, e) for e in (q.examples or ([q.example] if q.example else []))],
        })
    latency = [report.latency.get(t) for t in ("legacy", "new")]
    ratios = {}
    if all(latency):
        for name in ("p50", "p95", "p99"):
            one, two = getattr(latency[0], name), getattr(latency[1], name)
            ratios[name] = f"{two / one:.2f} ×" if one and two is not None else "–"
    first_trend = trend[0]
    return {
        "report": report, "window": _window(report), "scope": report.scope, "quirks": quirks,
        "new_quirks": [q for q in quirks if q["line"].new], "verdicts": charts.VERDICTS,
        "accepted_by_command": accepted_by_command, "rate_class": _rate_class,
        "latency": [lat for lat in latency if lat is not None], "latency_ratio": ratios,
        "burned": {"from": sum(first_trend.verdicts.get(v, 0) for v in ("open", "reproduce")),
                   "to": report.verdicts.get("open", 0) + report.verdicts.get("reproduce", 0),
                   "since": first_trend.taken_at, "runs": len(trend)},
        "charts": {
            "rate": charts.rate_over_time([charts.TimeBar(p.start, p.pairs, p.matched) for p in report.timeline],
                                          report.bucket),
            "commands": charts.bars("differences-per-command", [(k, float(v)) for k, v in by_command]),
            "verdicts": charts.bars("quirks-per-verdict", verdict_items, classes=[f"v-{v}" for v, _n in verdict_items]),
            "latency": charts.latency_histogram(
                {t: lat.histogram for t, lat in report.latency.items()},
                {t: {"p50": lat.p50, "p95": lat.p95, "p99": lat.p99} for t, lat in report.latency.items()}),
            "trend_rates": charts.trend_rates(trend),
            "trend_quirks": charts.trend_quirks(trend),
        },
        "data": _data(report),
    }


def _data(report: Report) -> dict[str, Any]:
    """The report's JSON view for the page's data block, less what the page draws from it at length (each
    quirk's hourly timeline) or repeats (each quirk's first example is also in its examples)."""
    data = report.to_dict()
    for quirk in data["quirks"]:
        quirk.pop("timeline", None)
        quirk.pop("example", None)
    return data


def render_html(report: Report) -> str:
    """The report as one HTML document (UTF-8 text) that opens offline and requests nothing."""
    return environment().get_template("report.html.j2").render(**_context(report))


def write_html(report: Report, path: str | Path) -> Path:
    """Write the report's HTML to `path` (folders created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(report), encoding="utf-8")
    return target
