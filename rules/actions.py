"""What a normalisation step does to the values at its path: the actions, compiled once per step.

An action is ("ignore",), ("unary", fn, side) — fn applied to one value, on the
"legacy", "new" or "both" sides — or ("pair", fn), where fn(legacy, new) returns
both values (tolerances). MISSING marks a field that is not there; DELETE asks
for the field to be removed.
"""

from __future__ import annotations

import hashlib
import operator
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

from rules.canonical import canonical_bytes
from rules.rulefile import NormaliseStep
from rules.transitions import NUMBER, as_bool

__all__ = ["MISSING", "DELETE", "Action", "Pairwise", "compile_actions", "trim", "casefold", "empty_to_null",
           "one_number"]

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


def trim(v: Any) -> Any:
    """Text without surrounding whitespace."""
    return v.strip() if isinstance(v, str) else v


def casefold(v: Any) -> Any:
    """Text in one letter case."""
    return v.casefold() if isinstance(v, str) else v


def empty_to_null(v: Any) -> Any:
    """null for an empty string, list or object."""
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
        return repr(one_number(v))
    return v


_string.changes = (bool, int, float)  # type: ignore[attr-defined]


def one_number(v: Any) -> Any:
    """12.0 and 12 are one JSON number: write them one way before hashing or printing."""
    return int(v) if type(v) is float and v.is_integer() and abs(v) < 2**53 else v


def _redact(v: Any) -> Any:
    if v is None:
        return None
    # Equal values stay equal, so masked fields still compare; the value itself is gone.
    if type(v) is str and v.startswith("redacted:"):
        return v  # redacting twice is redacting once (kept pairs are re-compared)
    return "redacted:" + hashlib.blake2b(canonical_bytes(one_number(v)), digest_size=6).hexdigest()


def _value_map(mapping: dict[str, Any]) -> Callable[[Any], Any]:
    def fn(v: Any) -> Any:
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            return mapping.get(v if isinstance(v, str) else str(one_number(v)), v)
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
        actions.append(("unary", trim, "both"))
    if step.casefold:
        actions.append(("unary", casefold, "both"))
    if step.null_equals_empty:
        actions.append(("unary", empty_to_null, "both"))
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
