"""Normalisation: rule steps compiled once into path-specific functions.

Each step names a path glob and what to do there (ignore, trim, casefold,
null ≡ empty, value map, order-insensitive lists, coercion, numeric and
timestamp tolerance, redaction). Compiling turns a step into (segments, fn);
applying walks both outcome documents together along those segments only,
never the whole document, and changes them in place.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from functools import reduce
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

import orjson

from rules.paths import ANY_INDEX, ANY_KEY, DEEP, INDEX, KEY, Segment, parse_path
from rules.rulefile import NormaliseStep

__all__ = ["Normaliser", "MISSING", "DELETE"]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING = _Sentinel("MISSING")  # the field is not there
DELETE = _Sentinel("DELETE")    # remove the field
Action = Callable[[Any, Any], tuple[Any, Any]]
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_TRUE, _FALSE = {"true", "t", "y", "yes", "1"}, {"false", "f", "n", "no", "0"}


def _both(fn: Callable[[Any], Any]) -> Action:
    def action(a: Any, b: Any) -> tuple[Any, Any]:
        return (a if a is MISSING else fn(a)), (b if b is MISSING else fn(b))
    return action


def _sided(fn: Callable[[Any], Any], side: str) -> Action:
    def action(a: Any, b: Any) -> tuple[Any, Any]:
        if side in ("legacy", "both") and a is not MISSING:
            a = fn(a)
        if side in ("new", "both") and b is not MISSING:
            b = fn(b)
        return a, b
    return action


def _trim(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def _casefold(v: Any) -> Any:
    return v.casefold() if isinstance(v, str) else v


def _empty_to_null(v: Any) -> Any:
    return None if v == "" or v == [] or v == {} else v


def _number(v: Any) -> Any:
    if isinstance(v, str) and _NUMBER.match(v):
        number = float(v)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return v


def _boolean(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        low = v.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return v


def _string(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return v


def _canonical(v: Any) -> bytes:
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _redact(v: Any) -> Any:
    if v is None:
        return None
    # Equal values stay equal, so masked fields still compare; the value itself is gone.
    return "redacted:" + hashlib.blake2b(_canonical(v), digest_size=6).hexdigest()


def _value_map(mapping: dict[str, Any]) -> Callable[[Any], Any]:
    def fn(v: Any) -> Any:
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            return mapping.get(v if isinstance(v, str) else str(v), v)
        return v
    return fn


def _unordered(key: str | None) -> Callable[[Any], Any]:
    def sort_key(item: Any) -> bytes:
        if key is not None and isinstance(item, dict) and key in item:
            return b"0" + _canonical(item[key])
        return b"1" + _canonical(item)

    def fn(v: Any) -> Any:
        return sorted(v, key=sort_key) if isinstance(v, list) else v
    return fn


def _tolerance(absolute: float, relative: float) -> Action:
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
    return value.astimezone(timezone.utc)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamp(tolerance_ms: float, zone: str) -> Action:
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


def compile_action(step: NormaliseStep) -> Action:
    """One function doing everything a step asks, in a fixed order."""
    if step.ignore:
        return lambda _a, _b: (DELETE, DELETE)
    actions: list[Action] = []
    if step.redact:
        actions.append(_both(_redact))
    if step.trim:
        actions.append(_both(_trim))
    if step.casefold:
        actions.append(_both(_casefold))
    if step.null_equals_empty:
        actions.append(_both(_empty_to_null))
    if step.value_map is not None:
        actions.append(_sided(_value_map(step.value_map), step.side))
    if step.coerce is not None:
        actions.append(_both({"number": _number, "boolean": _boolean, "string": _string}[step.coerce]))
    if step.unordered:
        actions.append(_both(_unordered(step.key)))
    if step.tolerance is not None:
        actions.append(_tolerance(step.tolerance.absolute, step.tolerance.relative))
    if step.timestamp is not None:
        actions.append(_timestamp(step.timestamp.tolerance_ms, step.timestamp.assume_timezone))
    if len(actions) == 1:
        return actions[0]
    return lambda a, b: reduce(lambda acc, fn: fn(*acc), actions, (a, b))


def _get(container: Any, key: Any) -> Any:
    if type(container) is dict:
        return container.get(key, MISSING)
    if type(container) is list and type(key) is int:
        return container[key] if key < len(container) else MISSING
    return MISSING


def _set(container: Any, key: Any, value: Any) -> None:
    if type(container) is dict:
        if value is DELETE or value is MISSING:
            container.pop(key, None)
        else:
            container[key] = value
    elif type(container) is list and type(key) is int and key < len(container):
        container[key] = None if value is DELETE or value is MISSING else value


def _keys(kind: str, value: Any, a: Any, b: Any) -> Iterable[Any]:
    if kind == KEY:
        return (value,)
    if kind == INDEX:
        return (value,)
    if kind == ANY_KEY:
        keys = list(a) if type(a) is dict else []
        if type(b) is dict:
            keys += [k for k in b if type(a) is not dict or k not in a]
        return keys
    if kind == ANY_INDEX:
        return range(max(len(a) if type(a) is list else 0, len(b) if type(b) is list else 0))
    return ()


def _children(a: Any, b: Any) -> Iterable[Any]:
    if type(a) is dict or type(b) is dict:
        return _keys(ANY_KEY, None, a, b)
    return _keys(ANY_INDEX, None, a, b)


def _apply(segments: tuple[Segment, ...], i: int, a: Any, b: Any, fn: Action) -> None:
    kind, value = segments[i]
    if kind == DEEP:
        _apply(segments, i + 1, a, b, fn)
        for key in list(_children(a, b)):
            ca, cb = _get(a, key), _get(b, key)
            if type(ca) in (dict, list) or type(cb) in (dict, list):
                _apply(segments, i, ca, cb, fn)
        return
    last = i == len(segments) - 1
    for key in list(_keys(kind, value, a, b)):
        ca, cb = _get(a, key), _get(b, key)
        if ca is MISSING and cb is MISSING:
            continue
        if last:
            na, nb = fn(ca, cb)
            if na is not ca:
                _set(a, key, na)
            if nb is not cb:
                _set(b, key, nb)
        else:
            _apply(segments, i + 1, ca, cb, fn)


class Normaliser:
    """Compiled normalisation steps, chosen per command kind once and cached."""

    def __init__(self, steps: Iterable[NormaliseStep] = ()) -> None:
        self._steps: list[tuple[frozenset[str], tuple[Segment, ...], Action, bool]] = []
        for step in steps:
            segments = tuple(parse_path(step.path))
            if segments and segments[-1][0] == DEEP:
                raise ValueError(f"path {step.path!r} may not end with '**'")
            self._steps.append((frozenset(step.commands), segments, compile_action(step), step.redact))
        self._by_kind: dict[str, list[tuple[tuple[Segment, ...], Action]]] = {}
        self._redact_by_kind: dict[str, list[tuple[tuple[Segment, ...], Action]]] = {}

    def __len__(self) -> int:
        return len(self._steps)

    def _for(self, kind: str, *, redact_only: bool = False) -> list[tuple[tuple[Segment, ...], Action]]:
        cache = self._redact_by_kind if redact_only else self._by_kind
        found = cache.get(kind)
        if found is None:
            found = cache[kind] = [
                (segments, fn) for commands, segments, fn, redact in self._steps
                if (not commands or kind in commands) and redact == redact_only
            ]
        return found

    def apply(self, kind: str, legacy: dict[str, Any], new: dict[str, Any]) -> None:
        """Normalise two outcome documents of one command kind, in place (redaction is `redact`'s)."""
        for segments, fn in self._for(kind):
            _apply(segments, 0, legacy, new, fn)

    def redact(self, kind: str, legacy: dict[str, Any], new: dict[str, Any]) -> bool:
        """Mask redacted fields in place (before anything is stored); True when a rule applied."""
        steps = self._for(kind, redact_only=True)
        for segments, fn in steps:
            _apply(segments, 0, legacy, new, fn)
        return bool(steps)
