"""Roll-ups the catalogue keeps as pairs are stored, so that reads never scan every pair.

Each roll-up row holds signed counters keyed by its primary key. Storing a
pair adds to them; storing the same dispatch token again first takes the old
pair's contribution off, so a replayed or re-compared pair never counts twice.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any, Callable, Iterable, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rules.compare import PairResult, quirk_field
from rules.schema import fingerprints, latency_days, latency_hours, pair_hours, quirk_hours, quirk_zones, quirks

__all__ = ["Rollup", "Contribution", "HourlyRollups", "latency_bin", "bin_bounds", "hour_of", "move_rollups", "json_text",
           "TARGETS"]

TARGETS = ("legacy", "new")
# Latency bins grow by 2^(1/8) (9 %) from 1 µs: a percentile read from a bin is within 4.5 % of the truth,
# and a day of one command kind and zone fills a few dozen rows, not one per pair.
_BIN_BASE_MS = 0.001
_BINS_PER_DOUBLING = 8


def json_text(value: Any) -> str:
    """A payload value as the catalogue stores it: JSON text."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def latency_bin(ms: float) -> int:
    """The histogram bin of a latency in milliseconds."""
    if not ms > _BIN_BASE_MS:  # also NaN
        return 0
    return int(math.log2(ms / _BIN_BASE_MS) * _BINS_PER_DOUBLING)


def bin_bounds(index: int) -> tuple[float, float]:
    """The lower and upper latency (ms) of a bin."""
    return (_BIN_BASE_MS * 2 ** (index / _BINS_PER_DOUBLING), _BIN_BASE_MS * 2 ** ((index + 1) / _BINS_PER_DOUBLING))


def hour_of(when: datetime) -> datetime:
    """The hour a (naive UTC) time falls in."""
    return when.replace(minute=0, second=0, microsecond=0)


class Rollup:
    """Signed changes to one roll-up table's counters, keyed by its primary key."""

    def __init__(self, table: sa.Table, keys: tuple[str, ...], counters: tuple[str, ...] = ("differences", "pairs")) -> None:
        self.table, self.keys, self.counters = table, keys, counters
        self.counts: dict[tuple[Any, ...], list[int]] = {}
        self.fresh: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(self, key: tuple[Any, ...], *deltas: int, row: dict[str, Any] | None = None,
            when: datetime | None = None) -> None:
        """Move the key's counters by `deltas` (in `counters` order); `row` when the key may be new."""
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = [0] * len(self.counters)
        for i, delta in enumerate(deltas):
            counts[i] += delta
        if row is None:
            return
        seen = self.fresh.get(key)
        if seen is None:
            self.fresh[key] = {**row, **({"first_seen": when, "last_seen": when} if when else {})}
        elif when is not None:
            seen["first_seen"] = min(seen["first_seen"], when)
            seen["last_seen"] = max(seen["last_seen"], when)

    def flush(self, conn: Connection, insert: Callable[[sa.Table], Any]) -> None:
        """Write the changes: upsert the keys that may be new, update the ones that only lost occurrences."""
        table = self.table
        if self.fresh:
            stmt = insert(table)
            ex = stmt.excluded
            update: dict[str, Any] = {name: table.c[name] + ex[name] for name in self.counters}
            if "first_seen" in table.c:
                update["first_seen"] = sa.case((ex.first_seen < table.c.first_seen, ex.first_seen),
                                               else_=table.c.first_seen)
                update["last_seen"] = sa.case((ex.last_seen > table.c.last_seen, ex.last_seen),
                                              else_=table.c.last_seen)
            rows = [{**row, **dict(zip(self.counters, self.counts.pop(key), strict=True))}
                    for key, row in self.fresh.items()]
            # Sorted by key: two writers upserting overlapping keys lock them in one order (no deadlock).
            rows.sort(key=lambda r: tuple(str(r[k]) for k in self.keys))
            conn.execute(stmt.on_conflict_do_update(index_elements=list(self.keys), set_=update), rows)
            self.fresh.clear()
        # What is left only lost occurrences: its rows exist already.
        gone = [{**{f"k_{k}": v for k, v in zip(self.keys, key, strict=True)},
                 **{f"d_{c}": d for c, d in zip(self.counters, counts, strict=True)}}
                for key, counts in sorted(self.counts.items(), key=lambda kv: tuple(map(str, kv[0]))) if any(counts)]
        self.counts.clear()
        if gone:
            where = sa.and_(*(table.c[k] == sa.bindparam(f"k_{k}") for k in self.keys))
            values = {c: table.c[c] + sa.bindparam(f"d_{c}") for c in self.counters}
            conn.execute(table.update().where(where).values(**values), gone)


class Contribution:
    """What one stored pair adds to the roll-ups (its `sign` is -1 to take an old pair off)."""

    __slots__ = ("hour", "command", "zone", "matched", "legacy_error", "new_error", "latencies", "differences")

    def __init__(self, received_at: datetime, command: str, zone: str | None, matched: bool, legacy_status: str,
                 new_status: str, legacy_latency_ms: float, new_latency_ms: float,
                 differences: Sequence[tuple[str, str]]) -> None:
        self.hour = hour_of(received_at)
        self.command, self.zone, self.matched = command, zone or "", matched
        self.legacy_error, self.new_error = legacy_status != "ok", new_status != "ok"
        self.latencies = (legacy_latency_ms, new_latency_ms)
        self.differences = differences  # (fingerprint, quirk) per occurrence

    @classmethod
    def of(cls, r: PairResult, received_at: datetime) -> "Contribution":
        """A new pair result's contribution."""
        return cls(received_at, r.command, r.zone, r.matched, r.legacy_status, r.new_status, r.legacy_latency_ms,
                   r.new_latency_ms, [(d.fingerprint, d.quirk) for d in r.differences])


class HourlyRollups:
    """The three hourly roll-ups (pairs, latency histograms, quirk occurrences) of a batch of pairs."""

    def __init__(self) -> None:
        self.pairs = Rollup(pair_hours, ("hour", "command", "zone"),
                            ("pairs", "matched", "differences", "legacy_errors", "new_errors"))
        self.latency = Rollup(latency_hours, ("hour", "command", "zone", "target", "bin"), ("pairs",))
        self.latency_days = Rollup(latency_days, ("day", "command", "zone", "target", "bin"), ("pairs",))
        self.quirks = Rollup(quirk_hours, ("quirk", "hour", "command", "zone"))

    def add(self, c: Contribution, sign: int) -> Counter[str]:
        """Add (sign 1) or take off (sign -1) one pair; returns its occurrences per quirk."""
        fresh = sign > 0
        hour_key = (c.hour, c.command, c.zone)
        self.pairs.add(hour_key, sign, sign * c.matched, sign * len(c.differences), sign * c.legacy_error,
                       sign * c.new_error, row=dict(zip(self.pairs.keys, hour_key, strict=True)) if fresh else None)
        day = c.hour.replace(hour=0)
        for target, ms in zip(TARGETS, c.latencies, strict=True):
            key = (*hour_key, target, latency_bin(ms))
            self.latency.add(key, sign, row=dict(zip(self.latency.keys, key, strict=True)) if fresh else None)
            key = (day, c.command, c.zone, target, key[-1])
            self.latency_days.add(key, sign, row=dict(zip(self.latency_days.keys, key, strict=True)) if fresh else None)
        # A pair counts once per quirk and hour, however many occurrences it had.
        per_quirk: Counter[str] = Counter(q for _f, q in c.differences)
        for quirk, n in per_quirk.items():
            key = (quirk, *hour_key)
            self.quirks.add(key, sign * n, sign, row=dict(zip(self.quirks.keys, key, strict=True)) if fresh else None)
        return per_quirk

    def flush(self, conn: Connection, insert: Callable[[sa.Table], Any]) -> None:
        """Write all three."""
        for rollup in (self.pairs, self.latency, self.latency_days, self.quirks):
            rollup.flush(conn, insert)


def move_rollups(conn: Connection, insert: Callable[[sa.Table], Any], new: Iterable[tuple[PairResult, datetime]],
                 old: Iterable[Contribution]) -> None:
    """Take the old pairs' contributions off every roll-up and add the new ones'."""
    by_fingerprint = Rollup(fingerprints, ("fingerprint",))
    by_quirk = Rollup(quirks, ("id",))
    by_zone = Rollup(quirk_zones, ("quirk", "zone"))
    hourly = HourlyRollups()
    for c in old:
        for quirk, n in hourly.add(c, -1).items():
            by_quirk.add((quirk,), -n, -1)
            by_zone.add((quirk, c.zone), -n, -1)
        for fingerprint, n in Counter(f for f, _q in c.differences).items():
            by_fingerprint.add((fingerprint,), -n, -1)
    for r, when in new:
        hourly.add(Contribution.of(r, when), 1)
        seen_fingerprints: set[str] = set()
        seen_quirks: set[str] = set()
        zone = r.zone or ""
        for d in r.differences:
            new_fp, new_quirk = d.fingerprint not in seen_fingerprints, d.quirk not in seen_quirks
            seen_fingerprints.add(d.fingerprint)
            seen_quirks.add(d.quirk)
            by_fingerprint.add((d.fingerprint,), 1, int(new_fp), row={
                "fingerprint": d.fingerprint, "quirk": d.quirk, "command": r.command, "pattern": d.pattern,
                "change": d.change, "transition": d.transition}, when=when)
            by_quirk.add((d.quirk,), 1, int(new_quirk), row={
                "id": d.quirk, "field": quirk_field(r.command, d.pattern), "change": d.change, "transition": d.transition,
                "example_token": r.token, "example_command": r.command, "example_path": d.path,
                "example_legacy": json_text(d.legacy), "example_new": json_text(d.new), "verdict": "open"}, when=when)
            by_zone.add((d.quirk, zone), 1, int(new_quirk), row={"quirk": d.quirk, "zone": zone})
    for rollup in (by_fingerprint, by_quirk, by_zone):
        rollup.flush(conn, insert)
    hourly.flush(conn, insert)


