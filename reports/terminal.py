"""The report in a terminal (rich): headline, slices, latency, top quirks, what is new, the trend."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from reports.query import MatchRate, Report

__all__ = ["render_terminal", "rate_text", "SPARK"]

SPARK = "▁▂▃▄▅▆▇█"
_VERDICT_STYLES = {"open": "yellow", "reproduce": "red", "retire": "green", "noise": "dim"}


def rate_text(rate: float | None) -> Text:
    """A match rate, coloured: green from 99.5 %, yellow from 95 %, else red; 'n/a' without pairs."""
    if rate is None:
        return Text("n/a", style="dim")
    style = "green" if rate >= 0.995 else "yellow" if rate >= 0.95 else "red"
    return Text(f"{rate:.2%}", style=style)


def sparkline(values: list[float]) -> str:
    """Values as a one-line bar chart."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - low) / span * (len(SPARK) - 1) + 0.5))] for v in values)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _rates(title: str, rates: list[MatchRate], accepted: dict[str, MatchRate] | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(title.split(" ")[-1], overflow="fold")
    table.add_column("pairs", justify="right")
    table.add_column("matched", justify="right")
    table.add_column("match rate", justify="right")
    if accepted is not None:
        table.add_column("accepted", justify="right")
    for m in rates:
        row = [m.name, f"{m.pairs:,}", f"{m.matched:,}", rate_text(m.rate)]
        if accepted is not None:
            row.append(rate_text(accepted[m.name].rate) if m.name in accepted else Text("-"))
        table.add_row(*row)
    return table


def _window(report: Report) -> Text:
    scope = report.scope
    text = Text()
    text.append("window  ", style="bold")
    if report.first_pair is None:
        text.append("no pairs in scope")
    else:
        end = report.last_pair + (timedelta(hours=1) if report.bucket == "hour" else timedelta(days=1))
        text.append(f"{_when(report.first_pair)} … {_when(end)} (whole {report.bucket}s)")
    filters = [f"zone {scope.zone}" if scope.zone else "", f"command {scope.command}" if scope.command else "",
               f"since {_when(scope.since)}" if scope.since else "", f"until {_when(scope.until)}" if scope.until else ""]
    if any(filters):
        text.append("   filtered by " + ", ".join(f for f in filters if f), style="cyan")
    text.append(f"\ncatalogue {report.catalogue}", style="dim")
    return text


def _headline(report: Report) -> Text:
    text = Text()
    text.append("match rate  ", style="bold")
    text.append_text(rate_text(report.overall.rate))
    text.append(f"  ({report.overall.matched:,} of {report.overall.pairs:,} pairs)   ")
    text.append("accepted  ", style="bold")
    text.append_text(rate_text(report.accepted.rate))
    text.append(" (noise and retired quirks accepted)\n")
    text.append("quirks  ", style="bold")
    text.append(f"{len(report.quirks)}: ")
    for n, verdict in enumerate(("open", "reproduce", "retire", "noise")):
        text.append(", " if n else "")
        text.append(f"{report.verdicts.get(verdict, 0)} {verdict}", style=_VERDICT_STYLES[verdict])
    pairs = report.overall.pairs
    for target in ("legacy", "new"):
        errors = report.errors.get(target, 0)
        text.append(f"   {target} errors/timeouts {errors:,}" + (f" ({errors / pairs:.2%})" if pairs else ""))
    return text


def _latency(report: Report) -> Table:
    table = Table(title="latency (ms)", title_justify="left")
    for column in ("target", "pairs", "p50", "p95", "p99"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for target in ("legacy", "new"):
        lat = report.latency.get(target)
        if lat is not None:
            table.add_row(target, f"{lat.pairs:,}", _ms(lat.p50), _ms(lat.p95), _ms(lat.p99))
    return table


def _quirks(report: Report, top: int) -> Table:
    table = Table(title=f"top quirks ({min(top, len(report.quirks))} of {len(report.quirks)})", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("quirk", overflow="fold")
    table.add_column("differences", justify="right")
    table.add_column("pairs", justify="right")
    table.add_column("over time", no_wrap=True)
    table.add_column("zones", overflow="fold")
    table.add_column("verdict")
    for line in report.quirks[:top]:
        q = line.quirk
        name = Text(q.description) + (Text("  new", style="bold magenta") if line.new else Text(""))
        table.add_row(q.id, name, f"{line.differences:,}", f"{line.pairs:,}",
                      sparkline([float(n) for _t, n in line.timeline[-24:]]), " ".join(sorted(q.zones)),
                      Text(q.verdict, style=_VERDICT_STYLES.get(q.verdict, "")))
    return table


def _trend(report: Report) -> Text | None:
    if not report.trend:
        return None
    shown = report.trend[-30:]
    text = Text()
    text.append(f"trend over the last {len(shown)} report(s)  ", style="bold")
    text.append("match rate " + sparkline([s.rate or 0.0 for s in shown]) + "  ")
    text.append("open quirks " + sparkline([float(s.verdicts.get("open", 0)) for s in shown]))
    first, last = shown[0], shown[-1]
    text.append(f"\n  {_when(first.taken_at)}: {sum(first.verdicts.values())} quirks, "
                f"{first.verdicts.get('open', 0)} open → {_when(last.taken_at)}: {sum(last.verdicts.values())} quirks, "
                f"{last.verdicts.get('open', 0)} open")
    return text


def render_terminal(report: Report, console: Console, *, top: int = 10) -> None:
    """Print the report."""
    parts: list = [_window(report), Text(""), _headline(report)]
    if report.overall.pairs:
        accepted = {m.name: m for m in report.accepted_by_command}
        parts += [_rates("match rate per command", report.by_command, accepted),
                  _rates("match rate per zone", report.by_zone), _latency(report)]
        if len(report.timeline) > 1:
            parts.append(Text(f"match rate per {report.bucket}  " + sparkline(
                [p.rate or 0.0 for p in report.timeline[-60:]])))
    if report.quirks:
        parts.append(_quirks(report, top))
    if report.previous is None:
        parts.append(Text("first report of this scope: the next one will list the quirks new since this one",
                          style="dim"))
    elif report.new_quirks:
        parts.append(Text(f"new since the previous report ({_when(report.previous.taken_at)}): "
                          + ", ".join(f"{q.quirk.id} {q.quirk.description}" for q in report.new_quirks),
                          style="magenta"))
    else:
        parts.append(Text(f"no quirk new since the previous report ({_when(report.previous.taken_at)})", style="dim"))
    trend = _trend(report)
    if trend is not None:
        parts.append(trend)
    console.print(Group(*parts))
