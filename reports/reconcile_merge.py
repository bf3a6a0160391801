"""Two sorted streams of Arrow batches merged by key; rows compared column by column, vectorised.

Each side's columns are first put in canonical form, the way `adapters.sql.canonical_row`
maps a row: legacy values mapped, coercions on both sides. A column no rule touches
is encoded with Arrow kernels (numbers as float64, text as text); a column a rule,
a value map or an unusual type touches is encoded per distinct value in Python,
with the very functions the comparator uses (`canonical_row`, then the compiled
rules on that one field). Rows whose encodings agree on every column are equal
for the comparator too; only the others (and rows on one side only) become
Python dicts, and the comparator decides about those. Nothing holds more than a
window of rows: everything up to the smaller of the two sides' last keys read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from adapters.sql import canonical_row
from reports.reconcile_read import Side, python_value
from rules.actions import MISSING
from rules.normalise import Normaliser
from rules.paths import PathGlob
from rules.rulefile import NormaliseStep
from shadow.config import TableConfig
from shadow.errors import ConfigError

__all__ = ["Column", "Encoder", "Window", "merge_windows", "tag", "state_path"]

_EXACT = 2 ** 53  # integers up to here are exact in a float64
_MAX_CACHE = 200_000


@dataclass(frozen=True)
class Column:
    """A compared column: its canonical name and its name on each side."""

    name: str
    legacy: str
    new: str


def state_path(column: str) -> str:
    """The comparator path of a column in a reconciled row: state.<column>."""
    if column.isidentifier():
        return f"state.{column}"
    return f"state[{orjson.dumps(column).decode()}]"


def tag(value: Any) -> str | None:
    """A canonical value as tagged text: equal text means the comparator sees equal values (12 and 12.0 alike)."""
    if value is None:
        return None
    if value is MISSING:
        return "i"
    if isinstance(value, bool):
        return "b1" if value else "b0"
    if isinstance(value, int):
        return f"n{value}"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < _EXACT:
            return f"n{int(value)}"
        return f"f{value!r}"
    if isinstance(value, str):
        return "s" + value
    return "j" + orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()


# -- encoding -------------------------------------------------------------------------

def _ruled(steps: list[NormaliseStep], kind: str, column: str) -> bool:
    path = state_path(column)
    for step in steps:
        if step.commands and kind not in step.commands:
            continue
        if PathGlob.compile(step.path).matches(path, prefix=True):
            return True
    return False


class Encoder:
    """One side's columns in a comparable form, batch by batch."""

    def __init__(self, side: Side, spec: TableConfig, columns: list[Column], normaliser: Normaliser,
                 steps: list[NormaliseStep], kind: str) -> None:
        self.side = side
        self.legacy = side.name == "legacy"
        self.spec = spec
        self.columns = columns
        self.normaliser = normaliser
        self.kind = kind
        self.ruled = {c.name for c in columns if _ruled(steps, kind, c.name)}
        self._cache: dict[str, dict[Any, str | None]] = {c.name: {} for c in columns}

    def source(self, column: Column) -> str:
        return column.legacy if self.legacy else column.new

    def encode(self, batch: pa.Table) -> dict[str, tuple[str, pa.Array]]:
        """Canonical name → (domain, array); domains: int, num, str, bool, tagged."""
        out = {}
        for column in self.columns:
            array = batch.column(self.source(column)).combine_chunks() \
                if isinstance(batch.column(self.source(column)), pa.ChunkedArray) else batch.column(self.source(column))
            out[column.name] = self._encode(column, array)
        return out

    def _encode(self, column: Column, array: pa.Array) -> tuple[str, pa.Array]:
        name, source = column.name, self.source(column)
        kind = array.type
        if name in self.ruled or (self.legacy and name in self.spec.values):
            return "tagged", self._per_value(column, array)
        coerce = self.spec.coerce.get(name)
        decimal = source in self.side.decimal_text
        if pa.types.is_null(kind):
            return "null", array
        if decimal and coerce in (None, "number"):
            try:
                return "num", pc.cast(array, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return "tagged", self._per_value(column, array)
        if pa.types.is_integer(kind) and coerce in (None, "number"):
            return "int", pc.cast(array, pa.int64())
        if pa.types.is_integer(kind) and coerce == "string":
            return "str", pc.cast(array, pa.string())
        if pa.types.is_floating(kind) and coerce in (None, "number"):
            return "num", pc.cast(array, pa.float64())
        if pa.types.is_decimal(kind) and coerce in (None, "number"):
            return "num", pc.cast(array, pa.float64())
        if pa.types.is_boolean(kind) and coerce in (None, "boolean"):
            return "bool", array
        if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and coerce in (None, "string"):
            return "str", pc.cast(array, pa.string())
        if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and coerce == "number":
            trimmed = pc.utf8_trim_whitespace(array)
            try:
                return "num", pc.cast(trimmed, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return "tagged", self._per_value(column, array)
        return "tagged", self._per_value(column, array)

    def canonical(self, column: Column, raw: Any) -> Any:
        """One raw value in canonical form, normalised by the rules on that field alone."""
        source = self.source(column)
        value = canonical_row({source: python_value(self.side, source)(raw)}, self.spec, legacy=self.legacy)
        value = next(iter(value.values()))
        if column.name not in self.ruled:
            return value
        docs = [{"status": None, "http_status": None, "response": None, "state": {column.name: value}}
                for _ in range(2)]
        self.normaliser.apply(self.kind, docs[0], docs[1])
        state = docs[0 if self.legacy else 1].get("state")
        return state.get(column.name, MISSING) if isinstance(state, dict) else MISSING

    def _per_value(self, column: Column, array: pa.Array) -> pa.Array:
        cache = self._cache[column.name]
        distinct = pc.unique(array)
        encoded = []
        for raw in distinct.to_pylist():
            key = raw if raw is None or isinstance(raw, (str, int, float, bool)) else repr(raw)
            found = cache.get(key, cache)
            if found is cache:
                found = tag(self.canonical(column, raw))
                if len(cache) < _MAX_CACHE:
                    cache[key] = found
            encoded.append(found)
        positions = pc.index_in(array, value_set=distinct, skip_nulls=False)
        return pa.array(encoded, pa.string()).take(positions)


def _tagged(domain: str, array: pa.Array) -> pa.Array:
    if domain == "tagged":
        return array
    if domain == "null":
        return pa.nulls(len(array), pa.string())
    if domain == "int":
        return pc.binary_join_element_wise("n", pc.cast(array, pa.string()), "")
    if domain == "bool":
        return pc.if_else(array, "b1", "b0")
    if domain == "str":
        return pc.binary_join_element_wise("s", array, "")
    # num: integral values as integers (12.0 is 12), others as float text
    integral = pc.and_(pc.equal(pc.floor(array), array), pc.less(pc.abs(array), float(_EXACT)))
    whole = pc.binary_join_element_wise("n", pc.cast(pc.if_else(integral, array, 0.0), pa.int64()), "")
    fraction = pc.binary_join_element_wise("f", pc.cast(array, pa.string()), "")
    return pc.if_else(integral, whole, fraction)


def _within_exact(array: pa.Array) -> bool:
    bounds = pc.min_max(array)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return low is None or (abs(low) < _EXACT and abs(high) < _EXACT)


def equal_columns(a: tuple[str, pa.Array], b: tuple[str, pa.Array]) -> pa.Array:
    """Row by row: do the two encodings say the comparator would see equal values? (null equals null)"""
    (da, xa), (db, xb) = a, b
    if da != db or da == "null":
        if {da, db} == {"int", "num"} and _within_exact(xa if da == "int" else xb):
            xa, xb = pc.cast(xa, pa.float64()), pc.cast(xb, pa.float64())
        elif "tagged" in (da, db) or {da, db} <= {"int", "num", "str", "bool", "null"}:
            xa, xb = _tagged(da, xa), _tagged(db, xb)
    both_null = pc.and_(pc.is_null(xa), pc.is_null(xb))
    return pc.or_(both_null, pc.fill_null(pc.equal(xa, xb), False))


# -- merging ----------------------------------------------------------------------------

@dataclass
class Window:
    """One step of the merge: rows on one side only, and matched rows whose encodings differ."""

    legacy: pa.Table | None
    new: pa.Table | None
    only_legacy: np.ndarray          # row positions in `legacy`
    only_new: np.ndarray             # row positions in `new`
    differing: np.ndarray            # (legacy position, new position) pairs
    equal: np.ndarray = field(default_factory=lambda: np.empty((0, 2), dtype=np.int64))
    matched_rows: int = 0


def _keys_of(table: pa.Table, names: list[str]) -> list[pa.Array]:
    return [table.column(n).combine_chunks() for n in names]


def _count_le(keys: list[pa.Array], bound: tuple[Any, ...]) -> int:
    """How many rows of a sorted key list are <= bound (lexicographic over the key columns)."""
    if not keys or len(keys[0]) == 0:
        return 0
    if len(keys) == 1:
        array = keys[0]
        if pa.types.is_integer(array.type):
            return int(np.searchsorted(array.to_numpy(zero_copy_only=False), bound[0], side="right"))
        return int(pc.sum(pc.less_equal(array, pa.scalar(bound[0], array.type))).as_py() or 0)
    mask = None
    equal_so_far = None
    for index, array in enumerate(keys):
        scalar = pa.scalar(bound[index], array.type)
        last = index == len(keys) - 1
        step = pc.less_equal(array, scalar) if last else pc.less(array, scalar)
        term = step if equal_so_far is None else pc.and_(equal_so_far, step)
        mask = term if mask is None else pc.or_(mask, term)
        same = pc.equal(array, scalar)
        equal_so_far = same if equal_so_far is None else pc.and_(equal_so_far, same)
    return int(pc.sum(mask).as_py() or 0)


def _last_key(keys: list[pa.Array]) -> tuple[Any, ...]:
    return tuple(array[len(array) - 1].as_py() for array in keys)


def check_sorted(side: str, keys: list[pa.Array], previous: tuple[Any, ...] | None) -> None:
    """Keys must come strictly ascending (unique, and sorted as Arrow compares): else the merge would be wrong."""
    array = keys[0]
    if len(array) == 0:
        return
    if len(keys) == 1:
        if pa.types.is_integer(array.type):
            values = array.to_numpy(zero_copy_only=False)
            bad = bool(np.any(values[1:] <= values[:-1])) or (previous is not None and values[0] <= previous[0])
        else:
            bad = len(array) > 1 and bool(pc.any(pc.less_equal(array.slice(1), array.slice(0, len(array) - 1))).as_py())
            bad = bad or (previous is not None and array[0].as_py() <= previous[0])
        if bad:
            raise ConfigError(f"{side} rows do not come in strictly ascending key order: the key is not unique, "
                              f"or the database sorts its text differently",
                              hint="key = [...] must name a unique key; for text keys on other databases, reconcile "
                                   "a view that sorts by code point")


def merge_windows(legacy: Iterator[pa.RecordBatch], new: Iterator[pa.RecordBatch], keys: tuple[list[str], list[str]],
                  compare: Any) -> Iterator[Window]:
    """Windows of rows both sides hold up to one key, merged by key.

    `compare(legacy_table, new_table, legacy_positions, new_positions)` says which matched
    rows differ (a boolean array). The key columns are renamed to their canonical names.
    """
    legacy_keys, new_keys = keys
    buffers: dict[str, pa.Table | None] = {"legacy": None, "new": None}
    done = {"legacy": False, "new": False}
    streams = {"legacy": legacy, "new": new}
    names = {"legacy": legacy_keys, "new": new_keys}
    previous: dict[str, tuple[Any, ...] | None] = {"legacy": None, "new": None}

    def fill(side: str) -> None:
        while not done[side] and (buffers[side] is None or buffers[side].num_rows == 0):
            try:
                batch = next(streams[side])
            except StopIteration:
                done[side] = True
                return
            table = pa.Table.from_batches([batch])
            found = _keys_of(table, names[side])
            check_sorted(side, found, previous[side])
            if table.num_rows:
                previous[side] = _last_key(found)
            buffers[side] = table if buffers[side] is None or buffers[side].num_rows == 0 else \
                pa.concat_tables([buffers[side], table], promote_options="default")  # an all-NULL column typed later

    while True:
        fill("legacy")
        fill("new")
        tables = dict(buffers)
        sizes = {s: (tables[s].num_rows if tables[s] is not None else 0) for s in tables}
        if sizes["legacy"] == 0 and sizes["new"] == 0 and done["legacy"] and done["new"]:
            return
        ends = [_last_key(_keys_of(tables[s], names[s])) for s in tables if not done[s] and sizes[s]]
        take = {}
        for s in tables:
            if sizes[s] == 0:
                take[s] = 0
            elif not ends:
                take[s] = sizes[s]
            else:
                take[s] = _count_le(_keys_of(tables[s], names[s]), min(ends))
        parts = {s: tables[s].slice(0, take[s]) if sizes[s] else None for s in tables}
        for s in tables:
            if sizes[s]:
                buffers[s] = tables[s].slice(take[s])
        yield _join(parts["legacy"], parts["new"], legacy_keys, new_keys, compare)


def _join(legacy: pa.Table | None, new: pa.Table | None, legacy_keys: list[str], new_keys: list[str],
          compare: Any) -> Window:
    empty = np.empty(0, dtype=np.int64)
    if legacy is None or legacy.num_rows == 0 or new is None or new.num_rows == 0:
        return Window(legacy=legacy, new=new,
                      only_legacy=np.arange(legacy.num_rows) if legacy is not None else empty,
                      only_new=np.arange(new.num_rows) if new is not None else empty,
                      differing=np.empty((0, 2), dtype=np.int64))
    canonical = [f"k{i}" for i in range(len(legacy_keys))]
    left_keys, right_keys = _keys_of(legacy, legacy_keys), _keys_of(new, new_keys)
    left_keys, right_keys = _aligned(left_keys, right_keys, legacy_keys)
    left = pa.table(dict(zip(canonical, left_keys, strict=True)) | {"l": pa.array(np.arange(legacy.num_rows))})
    right = pa.table(dict(zip(canonical, right_keys, strict=True)) | {"r": pa.array(np.arange(new.num_rows))})
    joined = left.join(right, keys=canonical, join_type="full outer", use_threads=False)
    lpos, rpos = joined.column("l"), joined.column("r")
    only_legacy = pc.filter(lpos, pc.is_null(rpos)).to_numpy(zero_copy_only=False).astype(np.int64)
    only_new = pc.filter(rpos, pc.is_null(lpos)).to_numpy(zero_copy_only=False).astype(np.int64)
    both = pc.and_(pc.is_valid(lpos), pc.is_valid(rpos))
    li = pc.filter(lpos, both).combine_chunks()
    ri = pc.filter(rpos, both).combine_chunks()
    same = compare(legacy, new, li, ri)
    differ = pc.invert(same)
    dl = pc.filter(li, differ).to_numpy(zero_copy_only=False).astype(np.int64)
    dr = pc.filter(ri, differ).to_numpy(zero_copy_only=False).astype(np.int64)
    el = pc.filter(li, same).to_numpy(zero_copy_only=False).astype(np.int64)
    er = pc.filter(ri, same).to_numpy(zero_copy_only=False).astype(np.int64)
    return Window(legacy=legacy, new=new, only_legacy=np.sort(only_legacy), only_new=np.sort(only_new),
                  differing=np.stack([dl, dr], axis=1), equal=np.stack([el, er], axis=1), matched_rows=len(li))


def _aligned(left: list[pa.Array], right: list[pa.Array], names: list[str]) -> tuple[list[pa.Array], list[pa.Array]]:
    """Key columns of one type on both sides (integers as int64, text as string), else a ConfigError."""
    out_l, out_r = [], []
    for name, a, b in zip(names, left, right, strict=True):
        if a.type == b.type:
            out_l.append(a)
            out_r.append(b)
            continue
        for kind, check in ((pa.int64(), pa.types.is_integer), (pa.string(), lambda t: pa.types.is_string(t) or
                                                                 pa.types.is_large_string(t))):
            if check(a.type) and check(b.type):
                out_l.append(pc.cast(a, kind))
                out_r.append(pc.cast(b, kind))
                break
        else:
            raise ConfigError(f"key column {name}: {a.type} on the legacy side but {b.type} on the new side",
                              hint="keys are matched as stored: reconcile a view that casts one side's key")
    return out_l, out_r
