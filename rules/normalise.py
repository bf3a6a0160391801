"""Normalisation: rule steps compiled once per command kind into generated code.

Each step names a path glob and what to do there (rules.actions). The steps of
a command kind become one trie and one generated function (rules.codegen) that
walks both outcome documents along those paths only, never the whole document,
and changes them in place. A `**` glob is resolved into the concrete paths it
reaches the first time a document shows them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from rules.actions import DELETE, MISSING, Action, compile_actions
from rules.codegen import Codegen, Node, union
from rules.paths import ANY_INDEX, ANY_KEY, DEEP, INDEX, KEY, Segment, parse_path
from rules.rulefile import NormaliseStep

__all__ = ["Normaliser", "MISSING", "DELETE"]


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
    for name in union(a, b, da, db):
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
        for name in union(a, b, da, db):
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
            root = Node()
            deep_actions = {n: acts for n, _seg, acts, _sym in self.deep}
            entries = list(self.fixed) + [(n, seg, deep_actions[n]) for n, seg in self.learned]
            for number, segments, actions in sorted(entries, key=lambda e: (e[0], repr(e[1]))):
                root.add(segments, actions, number)
            self._fn = Codegen().build(root) if root.leads_on else (lambda _a, _b: None)
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
        root = Node()  # one trie for all of them, so nested lists are still sorted inside-out
        for n, path, actions in reached:
            self.learned.add((n, path))
            root.add(path, actions, n)
        Codegen().build(root)(a, b)
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
