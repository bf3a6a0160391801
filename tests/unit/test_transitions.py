"""Transition classes: how two values differ, independent of the particular values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

from hypothesis import assume, given
from hypothesis import strategies as st

from rules.transitions import DESCRIPTIONS, classify

words = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=12)
instants = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(timezone.utc))


@given(words, st.integers(1, 8))
def test_padding_is_trailing_whitespace(word: str, pad: int) -> None:
    assert classify(word + " " * pad, word) == "trailing-whitespace"
    assert classify(word, " " * pad + word) == "leading-whitespace"


@given(words)
def test_case_only(word: str) -> None:
    assume(word.upper() != word.lower() and word.upper().casefold() == word.lower().casefold())
    assert classify(word.upper(), word.lower()) == "case-only"


@given(st.integers(0, 10**6))
def test_half_up_vs_half_even_is_rounding(n: int) -> None:
    value = Decimal(20 * n + 5) / 1000  # an even hundredth and a half: where the two roundings part
    up = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    even = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    assert up != even
    assert classify(float(up), float(even)) == "rounding"
    assert classify(float(value), float(even)) == "rounding"


@given(st.floats(1, 1e6), st.integers(1, 4))
def test_float_epsilon(x: float, ulps: int) -> None:
    import math

    y = x
    for _ in range(ulps):
        y = math.nextafter(y, math.inf)
    assert classify(x, y) == "float-epsilon"


@given(st.sampled_from(["", [], {}]))
def test_null_vs_empty_either_way(empty) -> None:
    assert classify(None, empty) == "null-vs-empty"
    assert classify(empty, None) == "null-vs-empty"


@given(instants, st.integers(-12, 14).filter(lambda h: h != 0))
def test_local_time_without_offset_is_a_timezone_shift(instant: datetime, hours: int) -> None:
    local = (instant + timedelta(hours=hours)).replace(tzinfo=None).isoformat(timespec="seconds")
    utc = instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert classify(local, utc) == "timezone-shift"


@given(instants, st.integers(1, 999))
def test_sub_second_precision(instant: datetime, ms: int) -> None:
    a = instant.replace(microsecond=0)
    b = a + timedelta(milliseconds=ms)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    assert classify(a.strftime(fmt), b.strftime(fmt)) == "sub-second-precision"


@given(st.booleans())
def test_boolean_representation(flag: bool) -> None:
    assert classify(int(flag), flag) == "boolean-representation"
    assert classify("Y" if flag else "N", flag) == "boolean-representation"


@given(st.integers(0, 10**6))
def test_string_number_vs_number_is_a_type_change(n: int) -> None:
    assert classify(f"{n}.00", n) == "type-change"


def test_examples_of_each_remaining_class() -> None:
    assert classify("A", "assigned") == "enum-mapping"
    assert classify("C", "cancelled") == "enum-mapping"
    assert classify("DEPOT-2", "DEPOT-1") == "value"
    assert classify(1, 2) == "value"
    assert classify({"a": 1}, None, "removed") == "absent"
    assert classify({"a": 1}, None, "removed", list_item=True) == "list-length"
    assert classify([1, 2], [2, 1], "order") == "list-order"


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10), st.floats(allow_nan=False)),
       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10), st.floats(allow_nan=False)))
def test_every_class_is_named_and_described(a, b) -> None:
    assert classify(a, b) in DESCRIPTIONS


def test_plain_words_name_the_side_an_example_shows() -> None:
    from rules.transitions import EXPLANATIONS, plain_words

    assert plain_words("code", "trailing-whitespace", "changed", "AB  ", "AB") == "legacy pads `code` with trailing spaces"
    assert plain_words("code", "trailing-whitespace", "changed", "AB", "AB\t") == \
        "the new engine pads `code` with trailing whitespace"
    assert plain_words("zone", "case-only", "changed", "CHI", "chi") == "legacy upper-cases `zone`"
    assert plain_words("km", "float-epsilon") == "values of `km` differ by float epsilon"
    assert plain_words("hazmat", "boolean-representation", "changed", 1, True) == \
        "boolean `hazmat`: 1/0 in legacy vs true/false in the new engine"
    assert plain_words("ref", "absent", "added", None, "x") == "`ref` is present in the new engine's outcome only"
    assert set(EXPLANATIONS) == set(DESCRIPTIONS)
    for transition in DESCRIPTIONS:  # every class has words, with or without an example
        assert "`f`" in plain_words("f", transition)
