"""Table reconciliation: the legacy and new state databases compared row by row, keyed (`shadow reconcile`).

Both tables are read through the same column mapping as the state reader
(`rename`, `values`, `coerce` of `[tables.<name>]`) and judged by the same
comparator and rules as traffic (`rules.compare.Comparator`), so a difference
found here is filed as a quirk like any other: command kind `reconcile:<table>`,
one pair result per differing row (token `reconcile:<table>:<key>`, so a second
run replaces the first), grouped by table + column + transition class.

Two ways to read, chosen per table (`method`):

* stream — each side sorted by key, read in Arrow batches, merged by key in
  windows; columns compared with vectorised kernels; only differing rows become
  Python dicts (reports.reconcile_merge).
* checksum — both databases of one kind with one integer key: counts and hash
  sums of key ranges computed inside each database (md5 on Postgres, HASHBYTES
  on SQL Server), ranges that differ split again, small ones streamed
  (reports.reconcile_checksum), as data-diff does.

Nothing is ever written to either database; neither table is held in memory whole.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from adapters.sql import canonical_row
from reports.reconcile_merge import Column, Encoder, Window, equal_columns, merge_windows
from reports.reconcile_read import Side, count_sql, open_side, python_value, select_sql
from rules.catalogue import Catalogue, IngestStats
from rules.compare import RECONCILE, Comparator, PairResult, fingerprint_id, quirk_field, quirk_id
from rules.normalise import Normaliser
from rules.paths import parse_path
from rules.rulefile import load_rules
from rules.schema import pair_results
from shadow.config import Config, TableConfig
from shadow.errors import ConfigError
from shadow.model import Command, Outcome, Pair, Status, Target

__all__ = ["ReconcileResult", "ColumnDifferences", "reconcile_table", "reconcile_token", "KIND_PREFIX"]

KIND_PREFIX = RECONCILE
_EXAMPLES = 5
_STORE_EVERY = 2000


@dataclass
class ColumnDifferences:
    """The rows that differ in one column: how many, by transition class, with examples."""

    rows: int = 0
    transitions: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"rows": self.rows, "transitions": dict(self.transitions), "examples": self.examples}


@dataclass
class ReconcileResult:
    """What one reconciliation found. `agree` is True when no row differs and none is on one side only."""

    table: str
    method: str = "stream"
    legacy_rows: int = 0
    new_rows: int = 0
    matched_rows: int = 0          # keys both sides hold
    only_legacy: int = 0
    only_new: int = 0
    differing: int = 0             # rows on both sides that differ after the rules
    normalised: int = 0            # rows that differ as stored, but not once the rules are applied
    columns: dict[str, ColumnDifferences] = field(default_factory=dict)
    only_legacy_examples: list[dict[str, Any]] = field(default_factory=list)
    only_new_examples: list[dict[str, Any]] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)
    columns_only_legacy: list[str] = field(default_factory=list)
    columns_only_new: list[str] = field(default_factory=list)
    ranges: int = 0                # checksum: key ranges compared inside the databases
    ranges_differing: int = 0      # checksum: of which differed (and were split or streamed)
    seconds: float = 0.0
    stored: IngestStats | None = None
    quirks: list[str] = field(default_factory=list)
    recovered: int = 0             # rows that differed in an earlier run and now agree (stored as matched)

    @property
    def agree(self) -> bool:
        """No row differs and no row is on one side only."""
        return not (self.only_legacy or self.only_new or self.differing)

    @property
    def rows_per_second(self) -> float:
        """Rows reconciled per second (the larger side's row count)."""
        return max(self.legacy_rows, self.new_rows) / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view, for --json output."""
        return {
            "table": self.table, "method": self.method, "agree": self.agree, "legacy_rows": self.legacy_rows,
            "new_rows": self.new_rows, "matched_rows": self.matched_rows, "only_legacy": self.only_legacy,
            "only_new": self.only_new, "differing": self.differing, "normalised": self.normalised,
            "columns": {k: v.to_dict() for k, v in sorted(self.columns.items())},
            "only_legacy_examples": self.only_legacy_examples, "only_new_examples": self.only_new_examples,
            "compared": self.compared, "columns_only_legacy": self.columns_only_legacy,
            "columns_only_new": self.columns_only_new, "ranges": self.ranges,
            "ranges_differing": self.ranges_differing, "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second), "recovered": self.recovered,
            "stored": self.stored.__dict__ if self.stored else None, "quirks": self.quirks,
        }


def reconcile_token(table: str, keys: Iterable[Any]) -> str:
    """The dispatch token of a row's pair result: `reconcile:<table>:<key>` (hashed when over 64 characters)."""
    text = "|".join(str(k) for k in keys)
    token = f"{KIND_PREFIX}{table}:{text}"
    if len(token) <= 64:
        return token
    return f"{KIND_PREFIX}{table[:24]}:#{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}"


# -- planning ---------------------------------------------------------------------------

@dataclass
class Plan:
    """The two sides, the columns compared and how they are named on each side."""

    spec: TableConfig
    name: str
    legacy: Side
    new: Side
    keys: list[Column]
    columns: list[Column]
    where: dict[str, str | None]
    only_legacy: list[str]
    only_new: list[str]


def _plan(config: Config, name: str, where: str | None) -> Plan:
    spec = config.tables.get(name)
    if spec is None:
        known = ", ".join(sorted(config.tables)) or "none"
        raise ConfigError(f"no table {name!r} in [tables] (configured: {known})",
                          hint=f"add [tables.{name}] with legacy = \"…\", new = \"…\", key = [\"…\"] to the config")
    for condition in (where, spec.where, spec.legacy_where, spec.new_where):
        if condition and ";" in condition:
            raise ConfigError(f"[tables.{name}]: a where condition may not hold ';' (one condition, not statements)",
                              hint="write a single SQL condition, e.g. zone = 'chi'")
    urls = {side: config.targets[side].state for side in ("legacy", "new")}  # type: ignore[index]
    legacy = open_side("legacy", urls["legacy"].reveal(), spec.legacy)  # type: ignore[union-attr]
    try:
        new = open_side("new", urls["new"].reveal(), spec.new)  # type: ignore[union-attr]
    except BaseException:
        legacy.close()
        raise
    canonical_legacy = {spec.rename.get(c, c): c for c in legacy.columns}
    canonical_new = {c: c for c in new.columns}
    for side, names in (("legacy", canonical_legacy), ("new", canonical_new)):
        for key in spec.key:
            if key not in names:
                raise ConfigError(f"[tables.{name}] key column {key!r} is not in the {side} table "
                                  f"{getattr(spec, side)} (columns: {', '.join(sorted(names))})",
                                  hint="name the canonical (new) column; map legacy names with rename = { … }")
    wanted = spec.columns or [c for c in canonical_new if c in canonical_legacy]
    for column in spec.columns:
        for side, names in (("legacy", canonical_legacy), ("new", canonical_new)):
            if column not in names:
                raise ConfigError(f"[tables.{name}] columns: {column!r} is not in the {side} table "
                                  f"{getattr(spec, side)} (columns: {', '.join(sorted(names))})",
                                  hint="name canonical (new) columns; map legacy names with rename = { … }")
    compared = [c for c in wanted if c not in spec.key and c not in spec.exclude]
    keys = [Column(k, canonical_legacy[k], canonical_new[k]) for k in spec.key]
    columns = [Column(c, canonical_legacy[c], canonical_new[c]) for c in compared]
    only_legacy = [] if spec.columns else sorted(set(canonical_legacy) - set(canonical_new) - set(spec.exclude))
    only_new = [] if spec.columns else sorted(set(canonical_new) - set(canonical_legacy) - set(spec.exclude))
    both = where or spec.where
    return Plan(spec, name, legacy, new, keys, columns,
                {"legacy": spec.legacy_where or both, "new": spec.new_where or both}, only_legacy, only_new)


# -- the run ------------------------------------------------------------------------------

class _Run:
    """Windows of rows in; pair results, counts and examples out."""

    def __init__(self, plan: Plan, comparator: Comparator, normaliser: Normaliser, steps: list[Any],
                 catalogue: Catalogue | None, result: ReconcileResult,
                 on_progress: Callable[[int], None] | None) -> None:
        self.plan = plan
        self.kind = f"{KIND_PREFIX}{plan.name}"
        self.comparator = comparator
        self.catalogue = catalogue
        self.result = result
        self.on_progress = on_progress
        self.encoders = {side.name: Encoder(side, plan.spec, plan.columns, normaliser, steps, self.kind)
                         for side in (plan.legacy, plan.new)}
        self.pending: list[PairResult] = []
        self.seen: set[str] = set()
        self.quirks: set[str] = set()
        self.earlier: set[str] = set()
        self.now = datetime.now(timezone.utc)

    # comparing encoded columns of matched rows
    def same(self, legacy: pa.Table, new: pa.Table, li: pa.Array, ri: pa.Array) -> pa.Array:
        if len(li) == 0:
            return pa.array([], pa.bool_())
        mask = pa.array(np.ones(len(li), dtype=bool))
        if not self.plan.columns:
            return mask
        left = self.encoders["legacy"].encode(legacy.take(li))
        right = self.encoders["new"].encode(new.take(ri))
        for column in self.plan.columns:
            mask = pc.and_(mask, equal_columns(left[column.name], right[column.name]))
        return mask

    def rows(self, side: Side, table: pa.Table, positions: np.ndarray) -> list[dict[str, Any]]:
        """Rows at positions, in canonical form (key and compared columns)."""
        if len(positions) == 0:
            return []
        legacy = side.name == "legacy"
        names = [c.legacy if legacy else c.new for c in self.plan.keys + self.plan.columns]
        wanted = [c.name for c in self.plan.keys + self.plan.columns]
        convert = {n: python_value(side, n) for n in names}
        out = []
        for raw in table.select(names).take(pa.array(positions)).to_pylist():
            row = canonical_row({n: convert[n](v) for n, v in raw.items()}, self.plan.spec, legacy=legacy)
            out.append({name: row.get(name) for name in wanted})
        return out

    def window(self, window: Window) -> None:
        result = self.result
        legacy_rows = window.legacy.num_rows if window.legacy is not None else 0
        new_rows = window.new.num_rows if window.new is not None else 0
        result.legacy_rows += legacy_rows
        result.new_rows += new_rows
        result.matched_rows += window.matched_rows
        for row in self.rows(self.plan.legacy, window.legacy, window.only_legacy):
            self.file(row, None)
        for row in self.rows(self.plan.new, window.new, window.only_new):
            self.file(None, row)
        if len(window.differing):
            left = self.rows(self.plan.legacy, window.legacy, window.differing[:, 0])
            right = self.rows(self.plan.new, window.new, window.differing[:, 1])
            for a, b in zip(left, right, strict=True):
                self.file(a, b)
        if self.on_progress is not None:
            self.on_progress(legacy_rows + new_rows)

    def pair(self, legacy: dict[str, Any] | None, new: dict[str, Any] | None) -> Pair:
        row = legacy if legacy is not None else new
        assert row is not None
        keys = [row[k.name] for k in self.plan.keys]
        command = Command(kind=self.kind, keys={k.name: str(v) for k, v in zip(self.plan.keys, keys, strict=True)},
                          token=reconcile_token(self.plan.name, keys), received_at=self.now, zone=None)
        return Pair(command=command,
                    legacy=Outcome(target=Target.LEGACY, status=Status.OK, state=legacy),
                    new=Outcome(target=Target.NEW, status=Status.OK, state=new))

    def file(self, legacy: dict[str, Any] | None, new: dict[str, Any] | None, *, recheck: bool = False) -> None:
        """Compare one row pair and keep its result for the catalogue."""
        found = self.comparator.compare(self.pair(legacy, new))
        if legacy is None or new is None:
            _absent(found, self.kind, removed=new is None)
        result = self.result
        key = {k.name: (legacy if legacy is not None else new or {}).get(k.name) for k in self.plan.keys}
        if recheck:
            result.recovered += int(found.matched)
        elif new is None:
            result.only_legacy += 1
            if len(result.only_legacy_examples) < _EXAMPLES:
                result.only_legacy_examples.append(key)
        elif legacy is None:
            result.only_new += 1
            if len(result.only_new_examples) < _EXAMPLES:
                result.only_new_examples.append(key)
        elif found.matched:
            result.normalised += 1
        else:
            result.differing += 1
            for column in dict.fromkeys(_column_of(d.path) for d in found.differences):
                summary = result.columns.setdefault(column, ColumnDifferences())
                summary.rows += 1
                first = next(d for d in found.differences if _column_of(d.path) == column)
                summary.transitions[first.transition] += 1
                if len(summary.examples) < _EXAMPLES:
                    summary.examples.append({"key": key, "legacy": first.legacy, "new": first.new,
                                             "transition": first.transition})
        self.quirks.update(d.quirk for d in found.differences)
        self.seen.add(found.token)
        if self.catalogue is not None and (not found.matched or found.token in self.earlier or recheck):
            self.pending.append(found)
            if len(self.pending) >= _STORE_EVERY:
                self.flush()

    def flush(self) -> None:
        if self.catalogue is not None and self.pending:
            stats = self.catalogue.store(self.pending)
            if self.result.stored is None:
                self.result.stored = IngestStats()
            self.result.stored.add(stats)
        self.pending = []


def _column_of(path: str) -> str:
    """The column a difference is in: state.status → status; the whole row (state) → (row)."""
    segments = parse_path(path)
    return str(segments[1][1]) if len(segments) > 1 else "(row)"


def _absent(found: PairResult, kind: str, *, removed: bool) -> None:
    """A row on one side only is one difference of the whole row: removed (legacy only) or added (new only)."""
    change = "removed" if removed else "added"
    for difference in found.differences:
        if difference.path == "state":
            difference.change = change
            difference.transition = "absent"
            difference.fingerprint = fingerprint_id(kind, difference.pattern, change, "absent")
            difference.quirk = quirk_id(quirk_field(kind, difference.pattern), change, "absent")


def _earlier_tokens(catalogue: Catalogue, kind: str) -> set[str]:
    """Tokens of rows that differed when this table was last reconciled (a read-only SELECT)."""
    with catalogue.engine.connect() as conn:
        return {row[0] for row in conn.execute(sa.select(pair_results.c.token).where(
            pair_results.c.command == kind, pair_results.c.matched.is_(False)))}


def _counts(plan: Plan) -> tuple[int, int]:
    keys = {"legacy": [k.legacy for k in plan.keys], "new": [k.new for k in plan.keys]}
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(side.execute, count_sql(side, keys[side.name], plan.where[side.name]))
                   for side in (plan.legacy, plan.new)]
        return futures[0].result()[0][0], futures[1].result()[0][0]


def stream(plan: Plan, run: _Run, key_range: tuple[int, int] | None = None) -> None:
    """Merge both sides' sorted batches by key and compare every window."""
    keys = {"legacy": [k.legacy for k in plan.keys], "new": [k.new for k in plan.keys]}
    columns = {"legacy": [c.legacy for c in plan.columns], "new": [c.new for c in plan.columns]}
    batches = {}
    for side in (plan.legacy, plan.new):
        sql = select_sql(side, keys[side.name], columns[side.name], plan.where[side.name], key_range)
        batches[side.name] = _keyed(side, keys[side.name], side.batches(sql, plan.spec.batch))
    for window in merge_windows(batches["legacy"], batches["new"], (keys["legacy"], keys["new"]), run.same):
        run.window(window)


def _keyed(side: Side, keys: list[str], batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
    """Integer keys read as numeric text (Postgres NUMERIC(p, 0)) as int64, so they join with integers."""
    for batch in batches:
        casts = [k for k in keys if k in side.decimal_text and side.key_kind(k) == "int"]
        if casts:
            columns = [pc.cast(batch.column(i), pa.int64()) if n in casts else batch.column(i)
                       for i, n in enumerate(batch.schema.names)]
            batch = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
        yield batch


def _recheck(plan: Plan, run: _Run, tokens: set[str]) -> None:
    """Rows that differed in an earlier run and were not found differing now: read them by key and store them again."""
    parsed = []
    for token in tokens:
        text = token[len(f"{KIND_PREFIX}{plan.name}:"):]
        if text.startswith("#"):
            continue  # a hashed (long) key cannot be read back; it stays as last stored
        parts = text.split("|")
        if len(parts) != len(plan.keys):
            continue
        values = []
        for column, part in zip(plan.keys, parts, strict=True):
            if plan.legacy.key_kind(column.legacy) == "int" or plan.new.key_kind(column.new) == "int":
                try:
                    values.append(int(part))
                except ValueError:
                    break
            else:
                values.append(part)
        else:
            parsed.append(tuple(values))
    for start in range(0, len(parsed), 500):
        chunk = parsed[start: start + 500]
        found = {}
        for side in (plan.legacy, plan.new):
            names = [k.legacy if side.name == "legacy" else k.new for k in plan.keys]
            columns = [c.legacy if side.name == "legacy" else c.new for c in plan.columns]
            match = sa.or_(*(sa.and_(*(sa.column(n) == sa.literal(v) for n, v in zip(names, values, strict=True)))
                             for values in chunk))
            statement = sa.select(*(sa.column(c) for c in dict.fromkeys(names + columns))).select_from(
                side.table_clause(names + columns)).where(match)
            if plan.where[side.name]:
                statement = statement.where(sa.text(f"({plan.where[side.name]})"))
            table = pa.Table.from_batches(list(side.batches(side.compile(statement), 10_000)))
            rows = run.rows(side, table, np.arange(table.num_rows)) if table.num_rows else []
            found[side.name] = {tuple(r[k.name] for k in plan.keys): r for r in rows}
        for key, legacy in found["legacy"].items():
            new = found["new"].get(key)
            if new is not None and reconcile_token(plan.name, key) not in run.seen:
                run.file(legacy, new, recheck=True)


def reconcile_table(config: Config, table: str, *, where: str | None = None, catalogue: Catalogue | None = None,
                    rules_folder: Path | None = None, method: str | None = None,
                    on_start: Callable[[int], None] | None = None,
                    on_progress: Callable[[int], None] | None = None) -> ReconcileResult:
    """Reconcile one configured table; file its differences into the catalogue when one is given.

    `on_start(total)` is called with the rows both sides will read (for a progress bar),
    `on_progress(rows)` with the rows read since the last call.
    """
    from reports.reconcile_checksum import checksum, checksum_applies

    started = time.perf_counter()
    plan = _plan(config, table, where)
    try:
        rules = load_rules(rules_folder if rules_folder is not None else config.store.rules)
        normaliser = Normaliser(rules.steps)
        comparator = Comparator(normaliser, keep_pairs=True)
        chosen = method or plan.spec.method
        why_not = checksum_applies(plan, rules.steps)
        if chosen == "checksum" and why_not:
            raise ConfigError(f"[tables.{table}] method = \"checksum\" cannot be used: {why_not}",
                              hint="use method = \"stream\" (or \"auto\", which picks it)")
        use_checksum = chosen == "checksum" or (chosen == "auto" and not why_not)
        result = ReconcileResult(table=table, method="checksum" if use_checksum else "stream",
                                 compared=[c.name for c in plan.columns], columns_only_legacy=plan.only_legacy,
                                 columns_only_new=plan.only_new)
        run = _Run(plan, comparator, normaliser, rules.steps, catalogue, result, on_progress)
        run.earlier = _earlier_tokens(catalogue, run.kind) if catalogue is not None else set()
        if on_start is not None:
            legacy_count, new_count = _counts(plan)
            on_start(legacy_count + new_count)
        if use_checksum:
            checksum(plan, run, stream)
        else:
            stream(plan, run)
        if run.earlier:
            _recheck(plan, run, run.earlier - run.seen)
        run.flush()
        if catalogue is not None and result.stored is not None:
            catalogue.apply_rules(rules)
        result.quirks = sorted(run.quirks)
        result.seconds = time.perf_counter() - started
        return result
    finally:
        plan.legacy.close()
        plan.new.close()
