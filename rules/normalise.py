"""Normalisation: rule steps compiled once into path-specific functions.

Each step names a path glob and what to do there (ignore, trim, casefold,
null ≡ empty, value map, order-insensitive lists, coercion, numeric and
timestamp tolerance, redaction). Compiling turns a step into (segments, fn);
applying walks both outcome documents together along those segments only,
never the whole document, and changes them in place.
"""

from __future__ import annotations

import hashlib
import operator
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from rules.canonical import canonical_bytes
from rules.paths import ANY_INDEX, ANY_KEY, DEEP, INDEX, KEY, Segment, parse_path
from rules.rulefile import NormaliseStep
from rules.transitions import NUMBER, as_bool

__all__ = ["Normaliser", "MISSING", "DELETE"]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING = _Sentinel("MISSING")  # the field is not there
DELETE = _Sentinel("DELETE")    # remove the field
Pairwise = Callable[[Any, Any], tuple[Any, Any]]
# An action is ("ignore",), ("unary", fn, side) — fn applied to one value, on "legacy", "new"
# or "both" sides — or ("pair", fn) — fn(legacy, new) -> (legacy, new), for tolerances.
Action = tuple[Any, ...]
_INTEGER = re.compile(r"^[+-]?\d+$")


def _trim(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def _casefold(v: Any) -> Any:
    return v.casefold() if isinstance(v, str) else v


def _empty_to_null(v: Any) -> Any:
    return None if v == "" or v == [] or v == {} else v


def _number(v: Any) -> Any:
    if isinstance(v, str) and NUMBER.match(v):
        text = v.strip()
        if _INTEGER.match(text):
            return int(text)  # exact, however large
        number = float(text)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return v


def _boolean(v: Any) -> Any:
    flag = as_bool(v)
    return v if flag is None else flag


_number.changes = (str,)  # type: ignore[attr-defined]
_boolean.changes = (int, str)  # type: ignore[attr-defined]


def _string(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(_one_number(v))
    return v


_string.changes = (bool, int, float)  # type: ignore[attr-defined]


def _one_number(v: Any) -> Any:
    """12.0 and 12 are one JSON number: write them one way before hashing or printing."""
    return int(v) if type(v) is float and v.is_integer() and abs(v) < 2**53 else v


def _redact(v: Any) -> Any:
    if v is None:
        return None
    # Equal values stay equal, so masked fields still compare; the value itself is gone.
    if type(v) is str and v.startswith("redacted:"):
        return v  # redacting twice is redacting once (kept pairs are re-compared)
    return "redacted:" + hashlib.blake2b(canonical_bytes(_one_number(v)), digest_size=6).hexdigest()


def _value_map(mapping: dict[str, Any]) -> Callable[[Any], Any]:
    def fn(v: Any) -> Any:
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            return mapping.get(v if isinstance(v, str) else str(_one_number(v)), v)
        return v
    fn.mapping = dict(mapping)  # type: ignore[attr-defined]  # lets the code generator inline the lookup
    return fn


def _unordered(key: str | None) -> Callable[[Any], Any]:
    by_key = operator.itemgetter(key) if key is not None else None

    def sort_key(item: Any) -> bytes:
        if key is not None and isinstance(item, dict) and key in item:
            return b"0" + canonical_bytes(item[key])
        return b"1" + canonical_bytes(item)

    def fn(v: Any) -> Any:
        if type(v) is not list:
            return v
        if key is not None:
            try:  # the common case: every item has the key, with values of one comparable type
                return sorted(v, key=by_key)
            except (TypeError, KeyError):
                pass
        return sorted(v, key=sort_key)
    fn.post = True  # type: ignore[attr-defined]  # sorts after the items below it are normalised
    return fn


def _tolerance(absolute: float, relative: float) -> Pairwise:
    def action(a: Any, b: Any) -> tuple[Any, Any]:
        if type(a) in (int, float) and type(b) in (int, float):
            if abs(a - b) <= max(absolute, relative * max(abs(a), abs(b))):
                return a, a
        return a, b
    return action


def _parse_instant(v: Any, assume: Any) -> datetime | None:
    if not isinstance(v, str) or len(v) < 16:
        return None
    text = v.strip().replace(" ", "T", 1)
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=assume)
    try:
        return value.astimezone(timezone.utc)
    except (OverflowError, ValueError):  # sentinel dates such as 9999-12-31 in a zone west of UTC
        return None


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamp(tolerance_ms: float, zone: str) -> Pairwise:
    assume = timezone.utc if zone == "UTC" else ZoneInfo(zone)
    window = timedelta(milliseconds=tolerance_ms)

    def action(a: Any, b: Any) -> tuple[Any, Any]:
        ta, tb = _parse_instant(a, assume), _parse_instant(b, assume)
        if ta is not None:
            a = _iso(ta)
        if tb is not None:
            b = _iso(ta if ta is not None and abs(ta - tb) <= window else tb)
        return a, b
    return action


def compile_actions(step: NormaliseStep) -> list[Action]:
    """What a step does, as actions in a fixed order."""
    if step.ignore:
        return [("ignore",)]
    actions: list[Action] = []
    if step.redact:
        actions.append(("unary", _redact, "both"))
    if step.trim:
        actions.append(("unary", _trim, "both"))
    if step.casefold:
        actions.append(("unary", _casefold, "both"))
    if step.null_equals_empty:
        actions.append(("unary", _empty_to_null, "both"))
    if step.value_map is not None:
        actions.append(("unary", _value_map(step.value_map), step.side))
    if step.coerce is not None:
        actions.append(("unary", {"number": _number, "boolean": _boolean, "string": _string}[step.coerce], "both"))
    if step.unordered:
        actions.append(("unary", _unordered(step.key), "both"))
    if step.tolerance is not None:
        actions.append(("pair", _tolerance(step.tolerance.absolute, step.tolerance.relative)))
    if step.timestamp is not None:
        actions.append(("pair", _timestamp(step.timestamp.tolerance_ms, step.timestamp.assume_timezone)))
    return actions


class _Node:
    """One trie node: edges by segment, and the actions of steps that end here (in rule order)."""

    __slots__ = ("keys", "indices", "any_key", "any_index", "actions")

    def __init__(self) -> None:
        self.keys: dict[str, _Node] = {}
        self.indices: dict[int, _Node] = {}
        self.any_key: _Node | None = None
        self.any_index: _Node | None = None
        self.actions: list[tuple[int, Action]] = []   # (step number, action): rule order

    def add(self, segments: tuple[Segment, ...], actions: list[Action], step: int = 0) -> None:
        node = self
        for kind, value in segments:
            if kind == KEY:
                node = node.keys.setdefault(value, _Node())  # type: ignore[arg-type]
            elif kind == INDEX:
                node = node.indices.setdefault(value, _Node())  # type: ignore[arg-type]
            elif kind == ANY_KEY:
                node.any_key = node.any_key or _Node()
                node = node.any_key
            elif kind == ANY_INDEX:
                node.any_index = node.any_index or _Node()
                node = node.any_index
            else:
                raise ValueError("a compiled trie holds no '**': expand it first")
        node.actions.extend((step, action) for action in actions)

    def merged(self, other: "_Node | None") -> "_Node":
        """A new node doing what this one and `other` do (actions kept in rule order)."""
        out = _Node()
        out.actions = sorted(self.actions + (other.actions if other else []), key=lambda sa: sa[0])
        for source in (self, other):
            if source is None:
                continue
            for name, child in source.keys.items():
                out.keys[name] = out.keys[name].merged(child) if name in out.keys else child.merged(None)
            for index, child in source.indices.items():
                out.indices[index] = out.indices[index].merged(child) if index in out.indices else child.merged(None)
            for attr in ("any_key", "any_index"):
                child = getattr(source, attr)
                if child is not None:
                    mine = getattr(out, attr)
                    setattr(out, attr, mine.merged(child) if mine else child.merged(None))
        return out

    def folded(self) -> "_Node":
        """The same trie where a named key also gets what `*` does there, so `*` may skip it.

        `*.zone` and a learned `state.created_at` then walk `state` once, not twice.
        """
        out = _Node()
        out.actions = list(self.actions)
        for name, child in self.keys.items():
            out.keys[name] = child.merged(self.any_key).folded() if self.any_key else child.folded()
        for index, child in self.indices.items():
            out.indices[index] = child.merged(self.any_index).folded() if self.any_index else child.folded()
        out.any_key = self.any_key.folded() if self.any_key else None
        out.any_index = self.any_index.folded() if self.any_index else None
        return out

    @property
    def leads_on(self) -> bool:
        return bool(self.keys or self.indices or self.any_key or self.any_index)


def _union(a: Any, b: Any, da: bool, db: bool) -> list[Any]:
    if da and db:
        return list(a) + [k for k in b if k not in a]
    return list(a) if da else list(b) if db else []


class _Codegen:
    """Turns a trie into one Python function: no per-node calls, plain dict and list operations."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {"MISSING": MISSING, "DELETE": DELETE, "_set": _set, "_union": _union,
                                          "_one_number": _one_number}

    def const(self, value: Any) -> str:
        name = f"C{len(self.constants)}"
        self.constants[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def walk(self, node: _Node, d: int, indent: int) -> None:
        a, b = f"a{d}", f"b{d}"
        if node.keys or node.any_key:
            self.emit(indent, f"da{d} = type({a}) is dict; db{d} = type({b}) is dict")
            # Both sides dicts is nearly every case: a branch of its own, with plain gets,
            # and fields that are only ignored are popped without being looked at.
            self.emit(indent, f"if da{d} and db{d}:")
            self.dict_edges(node, d, indent + 1, both=True)
            self.emit(indent, f"elif da{d} or db{d}:")
            self.dict_edges(node, d, indent + 1, both=False)
        if node.indices or node.any_index:
            self.emit(indent, f"na{d} = len({a}) if type({a}) is list else 0; nb{d} = len({b}) if type({b}) is list else 0")
            for index, child in node.indices.items():
                self.emit(indent, f"if {index} < na{d} or {index} < nb{d}:")
                self.emit(indent + 1, f"a{d + 1} = {a}[{index}] if {index} < na{d} else MISSING")
                self.emit(indent + 1, f"b{d + 1} = {b}[{index}] if {index} < nb{d} else MISSING")
                self.visit(child, d + 1, indent + 1, str(index), in_dict=False)
            if node.any_index is not None:
                self.emit(indent, f"for i{d} in range(na{d} if na{d} > nb{d} else nb{d}):")
                if node.indices:
                    self.emit(indent + 1, f"if i{d} in {self.const(frozenset(node.indices))}: continue")
                self.emit(indent + 1, f"a{d + 1} = {a}[i{d}] if i{d} < na{d} else MISSING")
                self.emit(indent + 1, f"b{d + 1} = {b}[i{d}] if i{d} < nb{d} else MISSING")
                self.visit(node.any_index, d + 1, indent + 1, f"i{d}", in_dict=False)

    def dict_edges(self, node: _Node, d: int, indent: int, *, both: bool) -> None:
        a, b = f"a{d}", f"b{d}"
        get_a = (lambda k: f"{a}.get({k}, MISSING)") if both else (lambda k: f"{a}.get({k}, MISSING) if da{d} else MISSING")
        get_b = (lambda k: f"{b}.get({k}, MISSING)") if both else (lambda k: f"{b}.get({k}, MISSING) if db{d} else MISSING")
        for name, child in node.keys.items():
            key = repr(name)
            if both and not child.leads_on and child.actions and all(act[0] == "ignore" for _, act in child.actions):
                self.emit(indent, f"{a}.pop({key}, None); {b}.pop({key}, None)")
                continue
            self.emit(indent, f"a{d + 1} = {get_a(key)}")
            self.emit(indent, f"b{d + 1} = {get_b(key)}")
            self.emit(indent, f"if a{d + 1} is not MISSING or b{d + 1} is not MISSING:")
            self.visit(child, d + 1, indent + 1, key, in_dict=True)
        if node.any_key is not None:
            self.emit(indent, f"for k{d} in _union({a}, {b}, da{d}, db{d}):")
            if node.keys:
                self.emit(indent + 1, f"if k{d} in {self.const(frozenset(node.keys))}: continue")
            self.emit(indent + 1, f"a{d + 1} = {get_a(f'k{d}')}")
            self.emit(indent + 1, f"b{d + 1} = {get_b(f'k{d}')}")
            self.visit(node.any_key, d + 1, indent + 1, f"k{d}", in_dict=True)
        self.emit(indent, "pass")

    def visit(self, node: _Node, d: int, indent: int, key: str, *, in_dict: bool) -> None:
        # The value at `key` existed on a side when it is not MISSING, so `parent[key] = x`
        # is right whether the parent is a dict (key edges) or a list (index edges).
        a, b, pa, pb = f"a{d}", f"b{d}", f"a{d - 1}", f"b{d - 1}"
        # Order-insensitive lists are sorted after everything below them is normalised,
        # so trimming an item's field or sorting a nested list cannot leave them out of order.
        post = [sa for sa in node.actions if sa[1][0] == "unary" and getattr(sa[1][1], "post", False)]
        for _step, action in [sa for sa in node.actions if sa not in post]:
            self.action(action, a, b, pa, pb, key, indent, in_dict)
        if node.leads_on:
            self.emit(indent, f"if type({a}) in (dict, list) or type({b}) in (dict, list):")
            self.walk(node, d, indent + 1)
            self.emit(indent + 1, "pass")
        for _step, action in post:
            self.action(action, a, b, pa, pb, key, indent, in_dict)
        self.emit(indent, "pass")

    def action(self, action: Action, a: str, b: str, pa: str, pb: str, key: str, indent: int, in_dict: bool) -> None:
        if action[0] == "ignore":
            if in_dict:
                self.emit(indent, f"if {a} is not MISSING: del {pa}[{key}]")
                self.emit(indent, f"if {b} is not MISSING: del {pb}[{key}]")
            else:
                self.emit(indent, f"if {a} is not MISSING: {pa}[{key}] = None")
                self.emit(indent, f"if {b} is not MISSING: {pb}[{key}] = None")
            self.emit(indent, f"{a} = {b} = MISSING")
        elif action[0] == "unary":
            fn, side = action[1], action[2]
            for value, parent, wanted in ((a, pa, ("legacy", "both")), (b, pb, ("new", "both"))):
                if side in wanted:
                    self.unary(fn, value, parent, key, indent)
        else:
            self.emit(indent, f"x, y = {self.const(action[1])}({a}, {b})")
            self.emit(indent, f"if x is not {a}: _set({pa}, {key}, x); {a} = x")
            self.emit(indent, f"if y is not {b}: _set({pb}, {key}, y); {b} = y")

    def unary(self, fn: Callable[[Any], Any], value: str, parent: str, key: str, indent: int) -> None:
        # The commonest actions are written out in place: a call per field per side is
        # most of what normalising costs (measured: 14 µs of 25 µs per pair with calls).
        inline = {
            _trim: f"if type({value}) is str and {value} != (x := {value}.strip()): {parent}[{key}] = {value} = x",
            _casefold: f"if type({value}) is str and {value} != (x := {value}.casefold()): "
                       f"{parent}[{key}] = {value} = x",
            _empty_to_null: f"if ({value} == '' or {value} == [] or {value} == {{}}) and {value} is not MISSING "
                            f"and {value} is not None: {parent}[{key}] = {value} = None",
        }.get(fn)
        if inline is not None:
            self.emit(indent, inline)
            return
        mapping = getattr(fn, "mapping", None)
        if mapping is not None:
            table = self.const(mapping)
            self.emit(indent, f"if type({value}) is str and {value} in {table}: {parent}[{key}] = {value} = {table}[{value}]")
            self.emit(indent, f"elif type({value}) in (int, float) and str(_one_number({value})) in {table}: "
                              f"{parent}[{key}] = {value} = {table}[str(_one_number({value}))]")
            return
        types = getattr(fn, "changes", None)  # the value types the action can change at all
        guard = f"type({value}) in {self.const(types)}" if types else f"{value} is not MISSING"
        self.emit(indent, f"if {guard}:")
        self.emit(indent + 1, f"x = {self.const(fn)}({value})")
        self.emit(indent + 1, f"if x is not {value}: {parent}[{key}] = {value} = x")

    def build(self, root: _Node) -> Callable[[Any, Any], None]:
        self.emit(0, "def normalise(a0, b0):")
        self.walk(root.folded(), 0, 1)
        self.emit(1, "return None")
        namespace = dict(self.constants)
        exec("\n".join(self.lines), namespace)  # noqa: S102 - our own generated code, from validated globs
        return namespace["normalise"]


def _get(container: Any, key: Any) -> Any:
    if type(container) is dict:
        return container.get(key, MISSING)
    if type(container) is list and type(key) is int:
        return container[key] if key < len(container) else MISSING
    return MISSING


def _children(a: Any, b: Any) -> list[tuple[Segment, Any, Any]]:
    """Container children of two values, side by side, with the segment that reaches them."""
    out: list[tuple[Segment, Any, Any]] = []
    da, db = type(a) is dict, type(b) is dict
    for name in _union(a, b, da, db):
        out.append(((KEY, name), a.get(name, MISSING) if da else MISSING, b.get(name, MISSING) if db else MISSING))
    la, lb = type(a) is list, type(b) is list
    if la or lb:
        for index in range(max(len(a) if la else 0, len(b) if lb else 0)):
            out.append(((ANY_INDEX, None), _get(a, index), _get(b, index)))
    return out


def _expand(segments: tuple[Segment, ...], i: int, a: Any, b: Any, prefix: tuple[Segment, ...],
            out: set[tuple[Segment, ...]]) -> None:
    """The concrete paths (list indices wild-carded) a glob with `**` reaches in two documents."""
    if i == len(segments):
        out.add(prefix)
        return
    kind, value = segments[i]
    if kind == DEEP:
        _expand(segments, i + 1, a, b, prefix, out)
        for segment, ca, cb in _children(a, b):
            if type(ca) in (dict, list) or type(cb) in (dict, list):
                _expand(segments, i, ca, cb, prefix + (segment,), out)
        return
    for segment, ca, cb in _children(a, b):
        skind, svalue = segment
        if kind == KEY and not (skind == KEY and svalue == value):
            continue
        if kind == ANY_KEY and skind != KEY:
            continue
        if kind in (INDEX, ANY_INDEX) and skind != ANY_INDEX:
            continue
        if ca is MISSING and cb is MISSING:
            continue
        _expand(segments, i + 1, ca, cb, prefix + ((INDEX, value) if kind == INDEX else segment,), out)


def _find_names(a: Any, b: Any, prefix: tuple[Segment, ...], found: dict[Any, set[tuple[Segment, ...]]]) -> None:
    """Where each wanted key name occurs in two documents, as paths with list indices wild-carded."""
    da, db = type(a) is dict, type(b) is dict
    if da or db:
        for name, paths in found.items():
            if (da and name in a) or (db and name in b):
                paths.add(prefix + ((KEY, name),))
        for name in _union(a, b, da, db):
            ca = a.get(name, MISSING) if da else MISSING
            cb = b.get(name, MISSING) if db else MISSING
            if type(ca) in (dict, list) or type(cb) in (dict, list):
                _find_names(ca, cb, prefix + ((KEY, name),), found)
    la, lb = type(a) is list, type(b) is list
    if la or lb:
        size_a, size_b = (len(a) if la else 0), (len(b) if lb else 0)
        for index in range(max(size_a, size_b)):
            ca = a[index] if index < size_a else MISSING
            cb = b[index] if index < size_b else MISSING
            if type(ca) in (dict, list) or type(cb) in (dict, list):
                _find_names(ca, cb, prefix + ((ANY_INDEX, None),), found)


def _set(container: Any, key: Any, value: Any) -> None:
    if type(container) is dict:
        if value is DELETE or value is MISSING:
            container.pop(key, None)
        else:
            container[key] = value
    elif type(container) is list and type(key) is int and key < len(container):
        container[key] = None if value is DELETE or value is MISSING else value


class _Program:
    """The steps for one command kind: generated code for every known path, and `**` resolved as seen.

    A glob with `**` is expanded into the concrete paths it reaches the first
    time a document shows them; those join the generated code, so later pairs
    pay nothing for the search. `complete` finds paths not seen before.
    """

    def __init__(self, steps: list[tuple[int, tuple[Segment, ...], list[Action], bool]]) -> None:
        self.fixed = [(n, seg, acts) for n, seg, acts, _sym in steps if all(k != DEEP for k, _ in seg)]
        self.deep = [(n, seg, acts, sym) for n, seg, acts, sym in steps if any(k == DEEP for k, _ in seg)]
        self.learned: set[tuple[int, tuple[Segment, ...]]] = set()
        self.exact_without_completion = all(sym for *_, sym in self.deep)
        self.order_sensitive = _may_collide(self.deep, self.fixed)
        self._fn: Callable[[Any, Any], None] | None = None

    def run(self, a: Any, b: Any) -> None:
        if self._fn is None:
            root = _Node()
            deep_actions = {n: acts for n, _seg, acts, _sym in self.deep}
            entries = list(self.fixed) + [(n, seg, deep_actions[n]) for n, seg in self.learned]
            for number, segments, actions in sorted(entries, key=lambda e: (e[0], repr(e[1]))):
                root.add(segments, actions, number)
            self._fn = _Codegen().build(root) if root.leads_on else (lambda _a, _b: None)
        self._fn(a, b)

    def _reached(self, a: Any, b: Any) -> list[tuple[int, tuple[Segment, ...], list[Action]]]:
        """`**` steps at paths not seen before, in rule order."""
        # `**.name`, the usual form, is found for all such steps in one walk over the containers.
        names = {seg[1][1] for seg in (d[1] for d in self.deep) if len(seg) == 2 and seg[1][0] == KEY}
        found_by_name: dict[Any, set[tuple[Segment, ...]]] = {name: set() for name in names}
        if names:
            _find_names(a, b, (), found_by_name)
        out = []
        for n, segments, actions, _sym in self.deep:
            if len(segments) == 2 and segments[1][0] == KEY:
                found = found_by_name[segments[1][1]]
            else:
                found = set()
                _expand(segments, 0, a, b, (), found)
            out += [(n, path, actions) for path in sorted(found, key=repr) if (n, path) not in self.learned]
        return out

    def discover(self, a: Any, b: Any) -> None:
        """Learn the paths `**` steps reach in these documents, so that `run` applies them in rule order."""
        for n, path, _actions in self._reached(a, b):
            self.learned.add((n, path))
            self._fn = None

    def complete(self, a: Any, b: Any) -> bool:
        """Apply `**` steps where they reach paths not seen before; True when any did."""
        reached = self._reached(a, b)
        if not reached:
            return False
        root = _Node()  # one trie for all of them, so nested lists are still sorted inside-out
        for n, path, actions in reached:
            self.learned.add((n, path))
            root.add(path, actions, n)
        _Codegen().build(root)(a, b)
        self._fn = None
        return True


def _last_name(segments: tuple[Segment, ...]) -> Any:
    kind, value = segments[-1]
    return value if kind == KEY else None  # None: any name


def _may_collide(deep: list[Any], fixed: list[Any]) -> bool:
    """Whether a `**` step may act where another step acts too, with the order mattering.

    Then the first sight of a path must not apply the `**` step late: such
    programs learn paths before running (slower, and exactly rule order).
    """
    def ignores(actions: list[Action]) -> bool:
        return all(action[0] == "ignore" for action in actions)

    steps = [(seg, acts) for _n, seg, acts, _sym in deep] + [(seg, acts) for _n, seg, acts in fixed]
    for index, (segments, actions) in enumerate(steps[: len(deep)]):
        if ignores(actions):
            continue
        for other, other_actions in steps[index + 1:]:
            if ignores(other_actions):
                continue
            mine, theirs = _last_name(segments), _last_name(other)
            if mine is None or theirs is None or mine == theirs:
                return True
    return False


class Normaliser:
    """Compiled normalisation steps: one generated program per command kind, built once and cached."""

    def __init__(self, steps: Iterable[NormaliseStep] = ()) -> None:
        self._steps: list[tuple[frozenset[str], tuple[Segment, ...], list[Action], bool, bool]] = []
        for step in steps:
            segments = tuple(parse_path(step.path))
            if segments and segments[-1][0] == DEEP:
                raise ValueError(f"path {step.path!r} may not end with '**'")
            # A step that treats both sides alike keeps equal values equal; only then may a
            # document that already compares equal skip the search for unseen `**` paths.
            symmetric = step.value_map is None or step.side == "both"
            self._steps.append((frozenset(step.commands), segments, compile_actions(step), step.redact, symmetric))
        self._programs: dict[tuple[str, bool], _Program] = {}

    def __len__(self) -> int:
        return len(self._steps)

    def program(self, kind: str, *, redact: bool = False) -> _Program:
        """The compiled steps for one command kind (redaction steps apart)."""
        key = (kind, redact)
        found = self._programs.get(key)
        if found is None:
            chosen = [(n, segments, actions, symmetric)
                      for n, (commands, segments, actions, is_redact, symmetric) in enumerate(self._steps)
                      if (not commands or kind in commands) and is_redact == redact]
            found = self._programs[key] = _Program(chosen)
        return found

    def apply(self, kind: str, legacy: dict[str, Any], new: dict[str, Any], *, complete: bool = True) -> None:
        """Normalise two outcome documents of one command kind, in place (redaction is `redact`'s).

        With complete=False, `**` steps are applied only at paths seen before; the
        comparator then calls `complete` when the documents still differ.
        """
        program = self.program(kind)
        if program.order_sensitive or (program.deep and not program.learned):
            # Learn where `**` steps reach before the first code is generated, rather than after.
            program.discover(legacy, new)
        program.run(legacy, new)
        if complete or not program.exact_without_completion:
            program.complete(legacy, new)

    def complete(self, kind: str, legacy: dict[str, Any], new: dict[str, Any]) -> bool:
        """Apply `**` steps at paths not seen before; True when that changed anything."""
        return self.program(kind).complete(legacy, new)

    def might_reach(self, kind: str, differences: Iterable[Any]) -> bool:
        """Whether a `**` step could act at one of these differences (each with .path, .legacy, .new).

        Steps of the form `**.name` can only change a difference at or under a key
        `name`, or one that holds a container (where `name` may sit inside); others always could.
        """
        program = self.program(kind)
        if not program.deep:
            return False
        names = set()
        for _n, segments, _actions, _sym in program.deep:
            if len(segments) != 2 or segments[1][0] != KEY:
                return True
            names.add(segments[1][1])
        for difference in differences:
            if type(difference.legacy) in (dict, list) or type(difference.new) in (dict, list):
                return True
            if any(kind == KEY and value in names for kind, value in parse_path(difference.path or "@")):
                return True
        return False

    def redact(self, kind: str, legacy: dict[str, Any], new: dict[str, Any]) -> bool:
        """Mask redacted fields in place, everywhere, before anything is stored; True when a rule exists."""
        program = self.program(kind, redact=True)
        if not program.fixed and not program.deep:
            return False
        program.run(legacy, new)
        program.complete(legacy, new)
        return True
