"""Transition classes: *how* a legacy value and a new value differ.

The class is what lets ten thousand differences at one path collapse into the
one quirk that explains them ("legacy pads with trailing spaces") and keeps two
unrelated behaviours at the same path apart. A class depends only on the shape
of the change, never on the particular values, so fingerprints stay stable.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["classify", "value_type", "as_bool", "plain_words", "NUMBER", "DESCRIPTIONS", "EXPLANATIONS"]

# Plain words for each class, used by `shadow quirks` and the reports.
DESCRIPTIONS: dict[str, str] = {
    "trailing-whitespace": "one side pads the value with trailing whitespace",
    "leading-whitespace": "one side pads the value with leading whitespace",
    "whitespace": "the values differ only in surrounding whitespace",
    "case-only": "the values differ only in letter case",
    "rounding": "the numbers differ by rounding at the last decimal",
    "float-epsilon": "the numbers differ by a floating-point epsilon",
    "null-vs-empty": "one side has null where the other has an empty value",
    "timezone-shift": "the timestamps differ by whole hours (local time vs UTC)",
    "datetime-format": "the same instant written differently",
    "sub-second-precision": "the timestamps differ below one second (precision loss)",
    "list-order": "the same items in a different order",
    "list-length": "one side has more items in the list",
    "enum-mapping": "a short code on one side, a word on the other",
    "type-change": "the same value with a different JSON type",
    "boolean-representation": "a boolean written as true/false on one side and 1/0 or a word on the other",
    "absent": "the field is present on one side only",
    "value": "the values differ",
}

# What each class usually means in a migration, and the decision it usually gets (the triage page shows it).
EXPLANATIONS: dict[str, str] = {
    "trailing-whitespace": "Fixed-width CHAR(n) columns pad text with spaces up to the column width; most new engines "
                           "store what they were given. Usually retired with a `trim = true` rule, unless a downstream "
                           "system compares the padded text.",
    "leading-whitespace": "One side keeps spaces in front of the value (often right-aligned fixed-width fields or "
                          "numbers formatted into text). Usually retired with `trim = true`.",
    "whitespace": "The values agree once surrounding whitespace is removed. Usually retired with `trim = true`.",
    "case-only": "The values agree ignoring letter case: a legacy column or code that stores upper-case, or a "
                 "collation that ignores case. Retire it (`casefold = true`) when nobody reads the case.",
    "rounding": "The numbers agree except in the last decimal: half-up against half-even rounding, or rounding at a "
                "different step. Money usually must be reproduced; measurements can often be retired with a tolerance.",
    "float-epsilon": "The numbers differ by far less than any meaningful amount: binary floating point against "
                     "decimal arithmetic. Usually noise or retired with a small relative tolerance.",
    "null-vs-empty": "One side writes null (or leaves the value out) where the other writes an empty string or list. "
                     "Usually retired with `null_equals_empty = true`, unless a consumer tells the two apart.",
    "timezone-shift": "The timestamps are whole hours apart: one side writes local time without an offset, the other "
                      "UTC. Often a real defect on one side: check which one a consumer reads before retiring it.",
    "datetime-format": "The same instant written two ways (offset, separator, precision digits). Usually retired with a "
                       "`timestamp` rule.",
    "sub-second-precision": "The timestamps agree to the second: one side stores fewer fractional digits "
                            "(DATETIME keeps 1/300 s). Usually noise or retired with a small `tolerance_ms`.",
    "list-order": "The same items in a different order: an ORDER BY missing on one side, or a set stored as a list. "
                  "Retire it (`unordered = true`) unless the order means something (stops on a route do).",
    "list-length": "One side has items the other lacks. Often a real difference in behaviour: look at the examples.",
    "enum-mapping": "A short legacy code on one side and a word on the other (A / assigned). Retire it with a "
                    "`value_map` once every code maps to exactly one word.",
    "type-change": "The same value with a different JSON type (\"12.50\" against 12.5). Retire it with `coerce` when "
                   "consumers parse the value either way.",
    "boolean-representation": "A boolean written as true/false on one side and as 1/0 or Y/N on the other (BIT "
                              "columns). Usually retired with `coerce = \"boolean\"`.",
    "absent": "The field exists on one side only: renamed, dropped, or new. Reproduce it if a consumer reads it.",
    "value": "The values differ in substance: no simple rule explains it. Read the examples and the whole outcome "
             "before deciding; these are where real defects hide.",
}

_TRUE = {"true", "t", "y", "yes", "1"}
_FALSE = {"false", "f", "n", "no", "0"}
NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")  # a number written as text
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def value_type(value: Any) -> str:
    """The JSON type name of a value: null, boolean, number, string, list, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_empty(value: Any) -> bool:
    return value == "" or value == [] or value == {} or (isinstance(value, str) and not value.strip())


def as_bool(value: Any) -> bool | None:
    """The boolean a value spells (1/0, true/false, Y/N …), or None when it spells none."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if isinstance(value, str) and NUMBER.match(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


def _as_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _DATETIME.match(value):
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _decimals(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _classify_numbers(a: Decimal, b: Decimal, a_raw: Any, b_raw: Any) -> str:
    if a == b:
        return "type-change"  # same number, different JSON type ("12.50" vs 12.5)
    if isinstance(a_raw, float) or isinstance(b_raw, float):
        scale = max(abs(a), abs(b), Decimal(1))
        if abs(a - b) <= scale * Decimal("1e-9"):
            return "float-epsilon"
    da, db = _decimals(a), _decimals(b)
    if da == db:
        # Same precision, one unit apart in the last place: half-up vs half-even and kin.
        if da >= 1 and abs(a - b) == Decimal(1).scaleb(-da):
            return "rounding"
    elif abs(a - b) <= Decimal(1).scaleb(-min(da, db)) / 2:
        # The coarser value is the finer one rounded.
        return "rounding"
    return "value"


def _classify_strings(a: str, b: str) -> str:
    if a.strip() == b.strip():
        if a.rstrip() == b.rstrip():
            return "trailing-whitespace"
        if a.lstrip() == b.lstrip():
            return "leading-whitespace"
        return "whitespace"
    if a.casefold() == b.casefold():
        return "case-only"
    if a.strip().casefold() == b.strip().casefold():
        return "whitespace"
    da, db = _as_datetime(a), _as_datetime(b)
    if da is not None and db is not None:
        return _classify_datetimes(da, db)
    na, nb = _as_number(a), _as_number(b)
    if na is not None and nb is not None:
        return _classify_numbers(na, nb, a, b)
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if 1 <= len(short) <= 3 and len(long_) > len(short) and short.isalnum() \
            and long_.casefold().startswith(short[0].casefold()):
        return "enum-mapping"
    return "value"


def _classify_datetimes(a: datetime, b: datetime) -> str:
    naive_a, naive_b = a.tzinfo is None, b.tzinfo is None
    # A timestamp without offset is read as UTC: a local-time writer then shows up
    # as a shift of whole hours, which is exactly the quirk to name.
    ua = a.replace(tzinfo=timezone.utc) if naive_a else a.astimezone(timezone.utc)
    ub = b.replace(tzinfo=timezone.utc) if naive_b else b.astimezone(timezone.utc)
    delta = abs(ua - ub)
    if delta == timedelta(0):
        return "datetime-format"
    if delta < timedelta(seconds=1):
        return "sub-second-precision"
    if delta % timedelta(hours=1) == timedelta(0) and delta <= timedelta(hours=26):
        return "timezone-shift"
    if (delta % timedelta(minutes=30) == timedelta(0)) and delta <= timedelta(hours=26):
        return "timezone-shift"
    return "value"


def classify(legacy: Any, new: Any, change: str = "changed", *, list_item: bool = False) -> str:
    """The transition class of one difference (DESCRIPTIONS holds the vocabulary).

    `change` is the difference's kind: changed, type, added, removed or order;
    `list_item` says an added/removed value is a list item rather than a field.
    """
    if change in ("added", "removed"):
        return "list-length" if list_item else "absent"
    if change == "order":
        return "list-order"
    if (legacy is None and _is_empty(new)) or (new is None and _is_empty(legacy)):
        return "null-vs-empty"
    ta, tb = value_type(legacy), value_type(new)
    if "boolean" in (ta, tb) and ta != tb:
        ba, bb = as_bool(legacy), as_bool(new)
        if ba is not None and ba == bb:
            return "boolean-representation"
    if ta == tb == "string":
        return _classify_strings(legacy, new)
    na, nb = _as_number(legacy), _as_number(new)
    if na is not None and nb is not None and "boolean" not in (ta, tb):
        return _classify_numbers(na, nb, legacy, new)
    if ta != tb:
        return "type-change"
    return "value"


def _boolean_form(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "1/0"
    return "a word (Y/N, yes/no)" if isinstance(value, str) else value_type(value)


def _side(legacy_first: bool) -> str:
    return "legacy" if legacy_first else "the new engine"


def plain_words(field: str, transition: str, change: str = "changed", legacy: Any = None, new: Any = None) -> str:
    """A quirk in plain words, naming the side when an example shows which: "legacy pads `code` with trailing spaces".

    Field names are quoted in backticks; `legacy` and `new` are one example's values (they decide wording only,
    never appear in it), so the words stay stable across a quirk's occurrences.
    """
    f = f"`{field}`"
    both_strings = isinstance(legacy, str) and isinstance(new, str)
    if transition in ("trailing-whitespace", "leading-whitespace") and both_strings:
        longer = legacy if len(legacy) > len(new) else new
        trailing = transition == "trailing-whitespace"
        extra = longer[len(longer.rstrip()):] if trailing else longer[:len(longer) - len(longer.lstrip())]
        what = "spaces" if extra and set(extra) == {" "} else "whitespace"
        where = "trailing" if trailing else "leading"
        return f"{_side(longer is legacy)} pads {f} with {where} {what}"
    if transition == "case-only" and both_strings:
        for side, value, other in (("legacy", legacy, new), ("the new engine", new, legacy)):
            if value.isupper() and not other.isupper():
                return f"{side} upper-cases {f}"
        return f"{f} differs only in letter case"
    if transition == "float-epsilon":
        return f"values of {f} differ by float epsilon"
    if transition == "rounding":
        return f"values of {f} differ by rounding at the last decimal"
    if transition == "null-vs-empty":
        if legacy is None or new is None:
            return f"{_side(legacy is None)} has null in {f} where {_side(legacy is not None)} has an empty value"
        return f"{f}: null on one side, an empty value on the other"
    if transition == "boolean-representation" and (legacy is not None or new is not None):
        return f"boolean {f}: {_boolean_form(legacy)} in legacy vs {_boolean_form(new)} in the new engine"
    if transition == "type-change" and (legacy is not None and new is not None):
        return f"{f} is a {value_type(legacy)} in legacy and a {value_type(new)} in the new engine"
    if transition == "timezone-shift":
        return f"timestamps in {f} differ by whole hours (local time vs UTC)"
    if transition == "sub-second-precision":
        return f"timestamps in {f} differ below one second (precision lost on one side)"
    if transition == "datetime-format":
        return f"{f} writes the same instant differently"
    if transition == "list-order":
        return f"{f} lists the same items in a different order"
    if transition == "list-length" and change in ("added", "removed"):
        return f"{_side(change == 'removed')} has extra items in {f}"
    if transition == "absent" and change in ("added", "removed"):
        return f"{f} is present in {_side(change == 'removed')}'s outcome only"
    if transition == "enum-mapping" and both_strings:
        return f"{_side(len(legacy) < len(new))} writes {f} as a short code, {_side(len(legacy) >= len(new))} as a word"
    if transition == "value":
        return f"values of {f} differ"
    return f"{f}: {DESCRIPTIONS.get(transition, transition)}"
