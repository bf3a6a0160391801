"""In-database checksums of key ranges, bisected where they differ (data-diff's method).

Each side computes, for buckets of an integer key range, the row count and the
sum of every row's hash (md5 of the row's canonical text on Postgres, HASHBYTES
on SQL Server), so only two numbers per bucket cross the network. Buckets that
agree are done; buckets that differ are split again, and small ones (or all of
them, once most buckets of a level differ and bisecting no longer pays) are
streamed and compared row by row.

Equal checksums must mean rows the comparator finds equal, so the method applies
only when both databases render a row's values as the same text: one database
kind on both sides, one integer key, the same type family per column, no legacy
`values` map and no rule that maps values on one side only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

import sqlalchemy as sa

from reports.reconcile_read import Side, bounds_sql, checksum_sql
from rules.paths import PathGlob

if TYPE_CHECKING:
    from reports.reconcile import Plan, _Run

__all__ = ["checksum", "checksum_applies", "type_family"]

BUCKETS = 32
LEAF_ROWS = 20_000
_FAMILIES = (("boolean", sa.Boolean), ("integer", sa.Integer), ("float", sa.Float), ("numeric", sa.Numeric),
             ("datetime", sa.DateTime), ("date", sa.Date), ("time", sa.Time), ("text", sa.String),
             ("binary", sa.LargeBinary))


def type_family(kind: sa.types.TypeEngine) -> str:
    """The family a column type renders its text in: integer, numeric, text, datetime, …"""
    for name, cls in _FAMILIES:
        if isinstance(kind, cls):
            return name
    return type(kind).__name__.lower()


def checksum_applies(plan: "Plan", steps: list[Any]) -> str | None:
    """None when in-database checksums can decide equality for this table, else why not."""
    legacy, new = plan.legacy, plan.new
    if legacy.dialect != new.dialect:
        return f"the two databases are of different kinds ({legacy.dialect} and {new.dialect})"
    if legacy.dialect not in ("postgresql", "mssql"):
        return f"in-database checksums need Postgres or SQL Server on both sides, not {legacy.dialect}"
    if len(plan.keys) != 1 or legacy.key_kind(plan.keys[0].legacy) != "int" or new.key_kind(plan.keys[0].new) != "int":
        return "it needs one integer key column"
    if plan.spec.values:
        return "values = { … } maps legacy values, which the databases cannot hash alike"
    kind = f"reconcile:{plan.name}"
    for step in steps:
        if step.value_map is not None and step.side != "both" and (not step.commands or kind in step.commands):
            glob = PathGlob.compile(step.path)
            if any(glob.matches(f"state.{c.name}", prefix=True) for c in plan.columns):
                return f"a rule maps values of {step.path} on the {step.side} side only"
    for column in plan.columns:
        a, b = type_family(legacy.columns[column.legacy]), type_family(new.columns[column.new])
        if a != b:
            return f"column {column.name} is {a} on the legacy side but {b} on the new side"
    return None


def _sums(side: Side, sql: str) -> dict[int, tuple[int, Any]]:
    return {int(bucket): (int(count), total) for bucket, count, total in side.execute(sql)}


def checksum(plan: "Plan", run: "_Run", stream: Callable[..., None], *, buckets: int = BUCKETS,
             leaf: int = LEAF_ROWS) -> None:
    """Compare key ranges by checksum, split the ones that differ, stream the small ones into `run`."""
    legacy, new = plan.legacy, plan.new
    keys = {"legacy": [plan.keys[0].legacy], "new": [plan.keys[0].new]}
    columns = {"legacy": [c.legacy for c in plan.columns], "new": [c.new for c in plan.columns]}
    result = run.result
    with ThreadPoolExecutor(2) as pool:
        found = [pool.submit(side.execute, bounds_sql(side, keys[side.name][0], plan.where[side.name]))
                 for side in (legacy, new)]
        (low_l, high_l, _n), (low_n, high_n, _m) = found[0].result()[0], found[1].result()[0]
        lows = [int(v) for v in (low_l, low_n) if v is not None]
        highs = [int(v) for v in (high_l, high_n) if v is not None]
        if not lows:
            return
        level = [(min(lows), max(highs) + 1)]
        while level:
            following = []
            differing: list[tuple[int, int, int]] = []
            for low, high in level:
                width = max(1, -(-(high - low) // buckets))
                jobs = [pool.submit(_sums, side, checksum_sql(side, keys[side.name], columns[side.name],
                                                              plan.where[side.name], low, high, buckets))
                        for side in (legacy, new)]
                left, right = jobs[0].result(), jobs[1].result()
                for bucket in sorted(set(left) | set(right)):
                    a, b = left.get(bucket, (0, 0)), right.get(bucket, (0, 0))
                    result.ranges += 1
                    start = low + bucket * width
                    end = min(high, start + width)
                    if a == b:
                        result.legacy_rows += a[0]
                        result.new_rows += b[0]
                        result.matched_rows += a[0]
                        if run.on_progress is not None:
                            run.on_progress(a[0] + b[0])
                        continue
                    result.ranges_differing += 1
                    differing.append((start, end, max(a[0], b[0])))
            # Differences spread over most buckets: splitting further would only scan the rows again.
            spread = len(differing) > buckets // 2 * len(level)
            reads: list[tuple[int, int]] = []
            for start, end, rows in differing:
                if rows <= leaf or end - start <= buckets or spread:
                    if reads and reads[-1][1] == start:
                        reads[-1] = (reads[-1][0], end)  # adjacent ranges: one sorted read, not several
                    else:
                        reads.append((start, end))
                else:
                    following.append((start, end))
            for key_range in reads:
                stream(plan, run, key_range)
            level = following
