"""The one query layer every report reads: a Report built from the catalogue's roll-ups (read-only).

Match rates, errors and latency come from the hourly roll-ups that the
catalogue moves as pairs are stored, so a report over 10 million pairs sums a
few thousand rows. A window (`since`, `until`) is applied at hour resolution:
the report says which whole hours it covers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from rules.catalogue import Catalogue, Quirk
from rules.compare import RECONCILE
from rules.rollups import TARGETS, bin_bounds
from rules.schema import differences, latency_days, latency_hours, pair_hours, pair_results, quirk_hours, quirks
from shadow.errors import InputError

__all__ = ["Scope", "MatchRate", "Latency", "QuirkLine", "TimePoint", "Report", "build_report", "parse_when", "latency",
           "error_counts", "RECONCILE_PREFIX"]

# Reconciliation files its rows as pairs of kind `reconcile:<table>`: their quirks are listed like any
# other, but they are table rows, not traffic, so match rates and latencies leave them out.
RECONCILE_PREFIX = RECONCILE
_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """A --since/--until value: ISO date or time (UTC unless it says), or a duration back from now (`36h`, `7d`)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        return (now or datetime.now(timezone.utc)) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{text!r} is not a time", hint="give an ISO date or time (2026-11-02, 2026-11-02T11:00Z) "
                                                         "or a duration back from now (36h, 7d, 2w)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _hour_floor(when: datetime) -> datetime:
    return when.astimezone(timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Scope:
    """What a report covers: a window (hour resolution) and optional zone and command kind."""

    since: datetime | None = None
    until: datetime | None = None
    zone: str | None = None
    command: str | None = None

    @property
    def first_hour(self) -> datetime | None:
        """The first whole hour in the window (naive UTC), or None for the beginning."""
        return None if self.since is None else _hour_floor(self.since)

    @property
    def end_hour(self) -> datetime | None:
        """The hour after the last one in the window (naive UTC): `until` rounded up."""
        if self.until is None:
            return None
        floor = _hour_floor(self.until)
        return floor if floor == self.until.astimezone(timezone.utc).replace(tzinfo=None) else floor + timedelta(hours=1)

    @property
    def label(self) -> str:
        """The filters as text: also the key under which trend snapshots are kept."""
        parts = [f"zone={self.zone or '*'}", f"command={self.command or '*'}"]
        if self.since or self.until:
            parts.append(f"hours={_iso(self.first_hour) or '…'}..{_iso(self.end_hour) or '…'}")
        return " ".join(parts)

    def where(self, table: sa.Table, *, start: datetime | None = None, end: datetime | None = None,
              whole: bool = True) -> list[sa.ColumnElement[bool]]:
        """The conditions on one roll-up (hourly, daily, or pair_results by its received_at).

        The time span is the scope's unless `start`/`end` narrow it (naive UTC; whole=False: no bound
        from the scope at all, only the ones given).
        """
        when = next(table.c[name] for name in ("hour", "day", "received_at") if name in table.c)
        found: list[sa.ColumnElement[bool]] = [~table.c.command.startswith(RECONCILE_PREFIX)] \
            if table is not quirk_hours else []
        start = start if start is not None or not whole else self.first_hour
        end = end if end is not None or not whole else self.end_hour
        if start is not None:
            found.append(when >= start)
        if end is not None:
            found.append(when < end)
        if self.zone is not None:
            found.append(table.c.zone == self.zone)
        if self.command is not None:
            found.append(table.c.command == self.command)
        return found


@dataclass(frozen=True)
class MatchRate:
    """Pairs compared and how many matched, for one slice."""

    name: str
    pairs: int
    matched: int

    @property
    def rate(self) -> float | None:
        """matched / pairs, or None when there is no pair (never a made-up 100 %)."""
        return self.matched / self.pairs if self.pairs else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"name": self.name, "pairs": self.pairs, "matched": self.matched, "match_rate": self.rate}


@dataclass(frozen=True)
class Latency:
    """One target's latency in the window, from the histogram roll-up (each figure within 4.5 %)."""

    target: str
    pairs: int
    p50: float | None
    p95: float | None
    p99: float | None
    histogram: list[tuple[float, float, int]]  # (lower ms, upper ms, pairs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"target": self.target, "pairs": self.pairs, "p50_ms": self.p50, "p95_ms": self.p95,
                "p99_ms": self.p99, "histogram": [list(b) for b in self.histogram]}


@dataclass(frozen=True)
class TimePoint:
    """Pairs and matches in one bucket of the window (an hour, or a day over long windows)."""

    start: datetime
    pairs: int
    matched: int
    differences: int

    @property
    def rate(self) -> float | None:
        """The bucket's match rate."""
        return self.matched / self.pairs if self.pairs else None


@dataclass(frozen=True)
class QuirkLine:
    """A quirk as the window saw it: its catalogue entry, and its counts inside the window."""

    quirk: Quirk
    differences: int
    pairs: int
    new: bool = False
    timeline: list[tuple[datetime, int]] = field(default_factory=list)  # (bucket start, differences)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {**self.quirk.to_dict(), "window_differences": self.differences, "window_pairs": self.pairs,
                "new_since_previous_report": self.new,
                "timeline": [[_iso(t), n] for t, n in self.timeline]}


@dataclass(frozen=True)
class Snapshot:
    """A past report's headline figures (one per `shadow report` run and scope)."""

    taken_at: datetime
    pairs: int
    matched: int
    accepted: int
    verdicts: dict[str, int]
    by_command: dict[str, float | None]
    quirk_ids: list[str]

    @property
    def rate(self) -> float | None:
        """The match rate then."""
        return self.matched / self.pairs if self.pairs else None

    @property
    def accepted_rate(self) -> float | None:
        """The match rate then, with noise and retired quirks accepted."""
        return self.accepted / self.pairs if self.pairs else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"taken_at": _iso(self.taken_at), "pairs": self.pairs, "matched": self.matched,
                "accepted": self.accepted, "match_rate": self.rate, "accepted_rate": self.accepted_rate,
                "verdicts": self.verdicts, "by_command": self.by_command, "quirks": len(self.quirk_ids)}


@dataclass(frozen=True)
class Report:
    """Everything a report shows; every format renders this one object."""

    scope: Scope
    catalogue: str                      # the catalogue's URL, password masked
    generated_at: datetime
    first_pair: datetime | None         # the first and last hour holding pairs in the window
    last_pair: datetime | None
    overall: MatchRate
    accepted: MatchRate                 # pairs whose every difference is a retired or noise quirk count as matched
    by_command: list[MatchRate]
    accepted_by_command: list[MatchRate]  # per command kind, noise and retired quirks accepted
    by_zone: list[MatchRate]
    errors: dict[str, int]              # target → pairs whose outcome there was an error or timeout
    latency: dict[str, Latency]
    timeline: list[TimePoint]
    bucket: str                         # "hour" or "day"
    differences_by_command: dict[str, int]
    verdicts: dict[str, int]            # quirks touched in the window, per verdict
    quirks: list[QuirkLine]             # most differences first
    previous: Snapshot | None = None
    trend: list[Snapshot] = field(default_factory=list)

    @property
    def new_quirks(self) -> list[QuirkLine]:
        """Quirks not in the previous report of this scope (empty on the first report)."""
        return [q for q in self.quirks if q.new]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view: the `--format json` summary."""
        return {
            "catalogue": self.catalogue, "generated_at": _iso(self.generated_at),
            "scope": {"since": _iso(self.scope.since), "until": _iso(self.scope.until), "zone": self.scope.zone,
                      "command": self.scope.command},
            "window": {"first_hour": _iso(self.first_pair), "last_hour": _iso(self.last_pair)},
            "overall": self.overall.to_dict(), "accepted": self.accepted.to_dict(),
            "by_command": [m.to_dict() for m in self.by_command],
            "accepted_by_command": [m.to_dict() for m in self.accepted_by_command],
            "by_zone": [m.to_dict() for m in self.by_zone],
            "errors": self.errors, "latency": {t: lat.to_dict() for t, lat in self.latency.items()},
            "timeline": {"bucket": self.bucket, "points": [
                {"start": _iso(p.start), "pairs": p.pairs, "matched": p.matched, "differences": p.differences}
                for p in self.timeline]},
            "differences_by_command": self.differences_by_command, "verdicts": self.verdicts,
            "quirks": [q.to_dict() for q in self.quirks],
            "new_quirks": [q.quirk.id for q in self.new_quirks],
            "previous": self.previous.to_dict() if self.previous else None,
            "trend": [s.to_dict() for s in self.trend],
        }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=timezone.utc)


def _percentile(histogram: list[tuple[float, float, int]], total: int, q: float) -> float | None:
    if not total:
        return None
    rank = q * total
    seen = 0
    for lower, upper, n in histogram:
        seen += n
        if seen >= rank:
            return (lower * upper) ** 0.5  # the bin's geometric middle
    return histogram[-1][1]


def _rates(conn: sa.Connection, scope: Scope, column: sa.ColumnElement[Any]) -> list[MatchRate]:
    t = pair_hours
    query = (sa.select(column, sa.func.sum(t.c.pairs), sa.func.sum(t.c.matched)).where(*scope.where(t))
             .group_by(column).having(sa.func.sum(t.c.pairs) > 0).order_by(column))
    return [MatchRate(str(name) if name != "" else "(none)", int(n), int(m)) for name, n, m in conn.execute(query)]


def _day_spans(scope: Scope) -> tuple[tuple[datetime | None, datetime | None] | None,
                                      list[tuple[datetime | None, datetime | None]]]:
    """The scope as whole days (for the daily roll-up) and the hours at its edges (for the hourly one)."""
    start, end = scope.first_hour, scope.end_hour
    day_from = None if start is None else start if start.hour == 0 else start.replace(hour=0) + timedelta(days=1)
    day_to = None if end is None else end.replace(hour=0)
    if day_from is not None and day_to is not None and day_from >= day_to:
        return None, [(start, end)]  # no whole day inside: hours only
    edges = []
    if start is not None and start < day_from:  # type: ignore[operator]
        edges.append((start, day_from))
    if end is not None and day_to is not None and day_to < end:
        edges.append((day_to, end))
    return (day_from, day_to), edges


def latency(conn: sa.Connection, scope: Scope) -> dict[str, Latency]:
    """Each target's latency histogram and percentiles in a scope (whole days from the daily roll-up)."""
    counts: dict[tuple[str, int], int] = {}
    days, hours = _day_spans(scope)
    parts = [(latency_days, *days)] if days is not None else []
    parts += [(latency_hours, start, end) for start, end in hours]
    for table, start, end in parts:
        for target, index, n in conn.execute(
                sa.select(table.c.target, table.c.bin, sa.func.sum(table.c.pairs))
                .where(*scope.where(table, start=start, end=end, whole=False))
                .group_by(table.c.target, table.c.bin)):
            counts[(target, int(index))] = counts.get((target, int(index)), 0) + int(n or 0)
    bins: dict[str, list[tuple[float, float, int]]] = {target: [] for target in TARGETS}
    for (target, index), n in sorted(counts.items()):
        if n > 0:
            bins.setdefault(target, []).append((*bin_bounds(index), n))
    out = {}
    for target, histogram in bins.items():
        total = sum(n for _l, _u, n in histogram)
        out[target] = Latency(target, total, _percentile(histogram, total, 0.50), _percentile(histogram, total, 0.95),
                              _percentile(histogram, total, 0.99), histogram)
    return out


def error_counts(conn: sa.Connection, scope: Scope) -> tuple[int, int]:
    """Pairs in a scope whose legacy, and whose new, outcome was an error or a timeout."""
    row = conn.execute(sa.select(sa.func.sum(pair_hours.c.legacy_errors), sa.func.sum(pair_hours.c.new_errors))
                       .where(*scope.where(pair_hours))).one()
    return int(row[0] or 0), int(row[1] or 0)


def _timeline(conn: sa.Connection, scope: Scope) -> tuple[list[TimePoint], str]:
    t = pair_hours
    rows = conn.execute(sa.select(t.c.hour, sa.func.sum(t.c.pairs), sa.func.sum(t.c.matched),
                                  sa.func.sum(t.c.differences)).where(*scope.where(t))
                        .group_by(t.c.hour).having(sa.func.sum(t.c.pairs) > 0).order_by(t.c.hour)).all()
    if not rows:
        return [], "hour"
    span = rows[-1][0] - rows[0][0]
    if span <= timedelta(days=7):
        return [TimePoint(_aware(h), int(p), int(m), int(d)) for h, p, m, d in rows], "hour"
    days: dict[datetime, list[int]] = {}
    for h, p, m, d in rows:
        day = days.setdefault(h.replace(hour=0), [0, 0, 0])
        day[0] += int(p)
        day[1] += int(m)
        day[2] += int(d)
    return [TimePoint(_aware(day), p, m, d) for day, (p, m, d) in sorted(days.items())], "day"


def _unexplained(conn: sa.Connection, scope: Scope) -> dict[str, int]:
    """Per command kind, the pairs in scope with a difference of an open or reproduce quirk.

    A scan of the differences only (about one pair in a hundred at a 1 % mismatch rate), not of every pair.
    """
    query = (sa.select(pair_results.c.command, sa.func.count(sa.distinct(differences.c.token)))
             .select_from(differences.join(quirks, quirks.c.id == differences.c.quirk)
                          .join(pair_results, pair_results.c.token == differences.c.token))
             .where(quirks.c.verdict.in_(("open", "reproduce")), *scope.where(pair_results))
             .group_by(pair_results.c.command))
    return {command: int(n) for command, n in conn.execute(query)}


def _quirk_counts(conn: sa.Connection, scope: Scope) -> tuple[list[tuple[str, int, int]], dict[str, int],
                                                                dict[str, list[tuple[datetime, int]]]]:
    t = quirk_hours
    conditions = scope.where(t)
    counts = conn.execute(sa.select(t.c.quirk, sa.func.sum(t.c.differences), sa.func.sum(t.c.pairs))
                          .where(*conditions).group_by(t.c.quirk).having(sa.func.sum(t.c.differences) > 0)).all()
    by_command = dict(conn.execute(sa.select(t.c.command, sa.func.sum(t.c.differences)).where(*conditions)
                                   .group_by(t.c.command).having(sa.func.sum(t.c.differences) > 0)
                                   .order_by(t.c.command)).all())
    timelines: dict[str, list[tuple[datetime, int]]] = {}
    for quirk, hour, n in conn.execute(sa.select(t.c.quirk, t.c.hour, sa.func.sum(t.c.differences))
                                       .where(*conditions).group_by(t.c.quirk, t.c.hour).order_by(t.c.quirk, t.c.hour)):
        if n:
            timelines.setdefault(quirk, []).append((_aware(hour), int(n)))
    return ([(q, int(d), int(p)) for q, d, p in counts], {k: int(v) for k, v in by_command.items()}, timelines)


def build_report(catalogue: Catalogue, scope: Scope | None = None, *, examples: int = 3,
                 detailed: int = 200) -> Report:
    """The report for a scope, read from the catalogue (nothing is written; see `snapshots.record`).

    `detailed` quirks (the most frequent) carry up to `examples` example occurrences each.
    """
    from reports.snapshots import history

    scope = scope or Scope()
    with catalogue.engine.connect() as conn:
        by_command = _rates(conn, scope, pair_hours.c.command)
        by_zone = _rates(conn, scope, pair_hours.c.zone)
        pairs = sum(m.pairs for m in by_command)
        overall = MatchRate("all", pairs, sum(m.matched for m in by_command))
        unexplained = _unexplained(conn, scope)
        accepted = MatchRate("accepted", pairs, pairs - sum(unexplained.values()))
        accepted_by_command = [MatchRate(m.name, m.pairs, m.pairs - unexplained.get(m.name, 0)) for m in by_command]
        errors = error_counts(conn, scope)
        latencies = latency(conn, scope)
        timeline, bucket = _timeline(conn, scope)
        counts, differences_by_command, timelines = _quirk_counts(conn, scope)
    counts.sort(key=lambda c: (-c[1], c[0]))
    found = {q.id: q for q in catalogue.quirks(ids=[c[0] for c in counts])} if counts else {}
    trend = history(catalogue, scope)
    previous = trend[-1] if trend else None
    before = set(previous.quirk_ids) if previous else None
    lines = []
    for n, (quirk_id, diffs, npairs) in enumerate(counts):
        quirk = found.get(quirk_id)
        if quirk is None:
            continue
        if n < detailed and examples:
            quirk = catalogue.quirk(quirk_id, examples=examples)
        lines.append(QuirkLine(quirk, diffs, npairs, new=before is not None and quirk_id not in before,
                               timeline=timelines.get(quirk_id, [])))
    verdicts: dict[str, int] = {}
    for line in lines:
        verdicts[line.quirk.verdict] = verdicts.get(line.quirk.verdict, 0) + 1
    return Report(
        scope=scope, catalogue=catalogue.url, generated_at=datetime.now(timezone.utc),
        first_pair=timeline[0].start if timeline else None,
        last_pair=timeline[-1].start if timeline else None,
        overall=overall, accepted=accepted, by_command=by_command, accepted_by_command=accepted_by_command,
        by_zone=by_zone,
        errors={"legacy": int(errors[0] or 0), "new": int(errors[1] or 0)}, latency=latencies,
        timeline=timeline, bucket=bucket, differences_by_command=differences_by_command, verdicts=verdicts,
        quirks=lines, previous=previous, trend=trend,
    )
