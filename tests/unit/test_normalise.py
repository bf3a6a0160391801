"""Normalisation: the algebra of rule steps, then each action on examples.

The properties say what every rule set guarantees (normalising twice is
normalising once; equal outcomes stay equal; `ignore` removes exactly the
differences under its glob; fingerprints ignore key order and list indices).
The examples say what each action does; the last section holds the bugs
property testing found, each with the example that would have caught it.
"""

from __future__ import annotations

import copy
import json
import zlib
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.compare import Comparator, Difference
from rules.normalise import Normaliser
from rules.paths import PathGlob
from rules.rulefile import NormaliseStep, TimestampRule, Tolerance
from shadow.model import Command, Outcome, Pair, Status, Target

WHEN = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
KIND = "assign_load"
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_pair(legacy_state: Any, new_state: Any, *, kind: str = KIND, legacy_response: Any = None,
              new_response: Any = None) -> Pair:
    return Pair(
        command=Command(kind=kind, token="t-1", zone="chi", keys={"load_id": "L-1"}, received_at=WHEN),
        legacy=Outcome(target=Target.LEGACY, status=Status.OK, http_status=200, response=legacy_response,
                       state=legacy_state, latency_ms=3.0),
        new=Outcome(target=Target.NEW, status=Status.OK, http_status=200, response=new_response,
                    state=new_state, latency_ms=2.0),
    )


def normalised(steps: list[NormaliseStep], legacy: Any, new: Any, *, kind: str = KIND) -> tuple[Any, Any]:
    """Both documents after `apply`, on copies."""
    legacy, new = copy.deepcopy(legacy), copy.deepcopy(new)
    Normaliser(steps).apply(kind, legacy, new)
    return legacy, new


def differences(steps: list[NormaliseStep], legacy_state: Any, new_state: Any, *, kind: str = KIND) -> list[Difference]:
    """What the comparator still reports with these rules."""
    pair = make_pair(copy.deepcopy(legacy_state), copy.deepcopy(new_state), kind=kind)
    return Comparator(Normaliser(steps)).compare(pair).differences


def step(path: str, **actions: Any) -> NormaliseStep:
    return NormaliseStep(path=path, **actions)


# --- strategies -------------------------------------------------------------------------------------------------

KEYS = ("a", "b", "c", "seq", "x.y")
# Values the actions care about: padded, cased, empty, numeric, boolean-ish and timestamp-like strings.
WORDS = ("", " ", "a", " A ", "B", "Y", "n", "0", "12", "12.50", "abc", "2026-11-02T08:00:00",
         "2026-11-02T14:00:00Z", "2026-11-02T14:00:00.004Z", "2026-11-02 14:00:00+01:00")
words = st.sampled_from(WORDS)
# The words come up often, so that the actions have something to act on. Integers stay within ±2**53 and
# timestamps far from year 1 and 9999: the edges have examples of their own below.
scalars = st.one_of(words, words, words, st.none() | st.booleans(),
                    st.integers(-(2**53), 2**53) | st.floats(-1e9, 1e9, allow_nan=False), st.text(max_size=5))
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=20,
)
top_documents = st.dictionaries(st.sampled_from(KEYS), documents, min_size=1, max_size=5)
# One field's value: a scalar, or a list of scalars or of items with a `seq`.
values = scalars | st.lists(scalars | st.fixed_dictionaries({"seq": scalars}, optional={"v": scalars}), max_size=4)

# A value map's keys are not numbers, booleans or other words the actions produce, and its values are left
# alone by every action, so a mapped value is final (a chain such as A → B, B → C is the user's to avoid).
MAP_KEYS = ("a", " A ", "B", "abc", "")
MAP_VALUES = ("x", "z", True, None, 7)


def _paths_under(root: str, *, deep: bool) -> list[str]:
    paths = [root, f"{root}[*]", f"{root}.*", f"{root}.a", f"{root}[*].b", f"{root}[0]", f'{root}["x.y"]',
             f"{root}[*][*]", f"{root}.*.seq"]
    return paths + [f"{root}.**.a", f"{root}.**.seq", f"{root}.**[*]"] if deep else paths


@st.composite
def steps(draw: st.DrawFn, *, root: str | None = None, paths: tuple[str, ...] = (),
          sides: tuple[str, ...] = ("legacy", "new", "both")) -> NormaliseStep:
    """One valid step with a random combination of actions (or ignore), at one of `paths`, or under `root`, or anywhere."""
    unordered = draw(st.booleans())
    if root is None:
        # Anywhere: a `**` in front, or a key or `*` at the top.
        root = draw(st.sampled_from(("a", "b", "*", "**.a", "**.seq", '["x.y"]')))
    path = draw(st.sampled_from(paths or _paths_under(root, deep=not unordered)))
    commands = draw(st.sampled_from(([], [], [], [KIND], ["cancel_load"])))
    if draw(st.integers(0, 5)) == 0:
        return NormaliseStep(path=path, commands=commands, ignore=True)
    fields: dict[str, Any] = {name: draw(st.booleans()) for name in ("trim", "casefold", "null_equals_empty", "redact")}
    fields["unordered"] = unordered
    if unordered and draw(st.booleans()):
        fields["key"] = "seq"
    if draw(st.booleans()):
        fields["value_map"] = draw(st.dictionaries(st.sampled_from(MAP_KEYS), st.sampled_from(MAP_VALUES),
                                                   min_size=1, max_size=3))
        fields["side"] = draw(st.sampled_from(sides))
    fields["coerce"] = draw(st.sampled_from((None, "number", "boolean", "string")))
    if draw(st.booleans()):
        absolute, relative = draw(st.sampled_from(((0.5, 0.0), (0.0, 0.01), (1.0, 0.1))))
        fields["tolerance"] = Tolerance(absolute=absolute, relative=relative)
    if draw(st.booleans()):
        fields["timestamp"] = TimestampRule(tolerance_ms=draw(st.sampled_from((0, 5, 1000))),
                                            assume_timezone=draw(st.sampled_from(("UTC", "America/Chicago",
                                                                                  "Europe/Paris"))))
    if not any(fields[name] for name in ("trim", "casefold", "null_equals_empty", "redact", "unordered", "coerce")) \
            and not {"value_map", "tolerance", "timestamp"} & fields.keys():
        fields["trim"] = True
    return NormaliseStep(path=path, commands=commands, **fields)


@st.composite
def disjoint_steps(draw: st.DrawFn) -> list[NormaliseStep]:
    """Up to four steps, each under its own top-level field, so no step touches what another changed."""
    roots = draw(st.lists(st.sampled_from(("a", "b", "c", "seq")), unique=True, min_size=1, max_size=4))
    return [draw(steps(root=root)) for root in roots]


def shuffled(value: Any, random: Any) -> Any:
    """The same document with every dict's keys in a random insertion order."""
    if isinstance(value, dict):
        items = list(value.items())
        random.shuffle(items)
        return {k: shuffled(v, random) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, random) for v in value]
    return value


# --- properties -------------------------------------------------------------------------------------------------

@PROPERTY
@given(st.fixed_dictionaries({"v": values}), st.fixed_dictionaries({}, optional={"v": values}),
       steps(paths=("v", "v[*]", "v[*].seq")))
def test_each_step_is_idempotent(legacy, new, chosen) -> None:
    once = normalised([chosen], legacy, new)
    assert normalised([chosen], *copy.deepcopy(once)) == once


@PROPERTY
@given(top_documents, top_documents, disjoint_steps())
def test_normalising_twice_is_normalising_once(legacy, new, chosen) -> None:
    once = normalised(chosen, legacy, new)
    twice = normalised(chosen, *copy.deepcopy(once))
    assert twice == once


@PROPERTY
@given(top_documents, top_documents, disjoint_steps(), st.data())
def test_a_normaliser_gives_the_same_result_whatever_it_normalised_before(legacy, new, chosen, data) -> None:
    earlier = data.draw(st.lists(st.just((legacy, new)) | st.tuples(top_documents, top_documents), max_size=3),
                        label="earlier pairs")
    warmed, comparator = Normaliser(chosen), Comparator(Normaliser(chosen))
    for before in earlier:
        warmed.apply(KIND, *copy.deepcopy(before))
        comparator.compare(make_pair(*copy.deepcopy(before)))
    a, b = copy.deepcopy(legacy), copy.deepcopy(new)
    warmed.apply(KIND, a, b)
    assert (a, b) == normalised(chosen, legacy, new)
    seen = comparator.compare(make_pair(copy.deepcopy(legacy), copy.deepcopy(new))).differences
    fresh = differences(chosen, legacy, new)
    assert [_seen(d) for d in seen] == [_seen(d) for d in fresh]


@PROPERTY
@given(top_documents, documents, st.lists(steps(sides=("both",)), max_size=4), st.booleans())
def test_a_pair_compared_with_itself_has_no_difference_whatever_the_rules(state, response, chosen, keep_pairs) -> None:
    # A value map on one side only translates that side's codes, so it may make equal values differ: `both` here.
    pair = make_pair(state, copy.deepcopy(state), legacy_response=response, new_response=copy.deepcopy(response))
    result = Comparator(Normaliser(chosen), keep_pairs=keep_pairs).compare(pair)
    assert result.matched and result.differences == []


# Documents for the ignore property: nested objects only. In lists the comparator aligns items by content, so
# ignoring a field inside list items may legitimately turn a list-order difference into none.
IGNORE_KEYS = ("a", "b", "c", "x.y")
ignore_scalars = st.none() | st.booleans() | st.integers(0, 3) | st.sampled_from(("", "x", "X ", "1"))
objects = st.recursive(ignore_scalars, lambda inner: st.dictionaries(st.sampled_from(IGNORE_KEYS), inner, max_size=3),
                       max_leaves=12)
top_objects = st.dictionaries(st.sampled_from(IGNORE_KEYS), objects, max_size=3)


def mutated(data: st.DataObject, doc: dict[str, Any]) -> dict[str, Any]:
    """A copy with random leaves changed, keys dropped and new keys added; objects and scalars keep their kind."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        choice = data.draw(st.sampled_from(("keep", "keep", "change", "drop")))
        if choice == "drop":
            continue
        if isinstance(value, dict):
            out[key] = mutated(data, value)
        else:
            out[key] = data.draw(ignore_scalars) if choice == "change" else value
    for key, value in data.draw(st.dictionaries(st.sampled_from(IGNORE_KEYS), objects, max_size=2)).items():
        if key not in doc:
            out[key] = value
    return out


def _segment(name: str) -> str:
    return f'["{name}"]' if "." in name else f".{name}"


globs = st.builds(
    lambda root, deep, names: (root + ("." + "**" if deep else "") + "".join(_segment(n) for n in names)).lstrip("."),
    st.sampled_from(("state", "response", "*", "**")),
    st.booleans(),
    st.lists(st.sampled_from(IGNORE_KEYS + ("*",)), min_size=1, max_size=3),
)


def _seen(d: Difference) -> tuple[Any, ...]:
    # An object on one side loses the ignored fields inside it; only scalar values are compared as they were.
    values = tuple(v for v in (d.legacy, d.new) if not isinstance(v, (dict, list)))
    return d.path, d.pattern, d.change, d.transition, d.fingerprint, d.quirk, values


@PROPERTY
@given(top_objects, top_objects, globs, st.data())
def test_ignoring_a_path_removes_exactly_the_differences_at_or_under_it(state, response, glob, data) -> None:
    pair = make_pair(state, mutated(data, state), legacy_response=response, new_response=mutated(data, response))
    without = Comparator().compare(copy.deepcopy(pair)).differences
    with_rule = Comparator(Normaliser([step(glob, ignore=True)])).compare(copy.deepcopy(pair)).differences
    compiled = PathGlob.compile(glob)
    expected = [d for d in without if not compiled.matches(d.path, prefix=True)]
    assert [_seen(d) for d in with_rule] == [_seen(d) for d in expected]


@PROPERTY
@given(top_documents, top_documents, st.randoms(use_true_random=False))
def test_fingerprints_do_not_depend_on_key_order(legacy, new, random) -> None:
    before = Comparator().compare(make_pair(copy.deepcopy(legacy), copy.deepcopy(new))).differences
    after = Comparator().compare(make_pair(shuffled(legacy, random), shuffled(new, random))).differences
    assert {(d.path, d.fingerprint) for d in after} == {(d.path, d.fingerprint) for d in before}


@PROPERTY
@given(st.integers(0, 3), st.integers(0, 3), st.text(alphabet="abcAB", min_size=1, max_size=6))
def test_fingerprints_do_not_depend_on_the_list_index(first, second, name) -> None:
    def fingerprints(index: int) -> set[str]:
        stops = [{"seq": n, "driver_name": "ann"} for n in range(4)]
        legacy = {"stops": copy.deepcopy(stops)}
        stops[index]["driver_name"] = name + "   "
        legacy["stops"][index]["driver_name"] = name
        found = differences([], legacy, {"stops": stops})
        assert [d.path for d in found] == [f"state.stops[{index}].driver_name"]
        return {d.fingerprint for d in found}

    assert fingerprints(first) == fingerprints(second)


# --- each action ------------------------------------------------------------------------------------------------

def test_trim_casefold_and_null_equals_empty_apply_to_both_sides() -> None:
    legacy = {"name": " Ann Lee  ", "zone": "CHI", "note": "", "tags": [], "extra": {}}
    new = {"name": "Ann Lee ", "zone": "chi", "note": None, "tags": None, "extra": None}
    rules = [step("name", trim=True), step("zone", casefold=True), step("note", null_equals_empty=True),
             step("tags", null_equals_empty=True), step("extra", null_equals_empty=True)]
    a, b = normalised(rules, legacy, new)
    assert a == b == {"name": "Ann Lee", "zone": "chi", "note": None, "tags": None, "extra": None}


@pytest.mark.parametrize(("side", "expected"), [
    ("legacy", ({"status": "assigned", "code": "one"}, {"status": "A", "code": 1})),
    ("new", ({"status": "A", "code": 1}, {"status": "assigned", "code": "one"})),
    ("both", ({"status": "assigned", "code": "one"}, {"status": "assigned", "code": "one"})),
])
def test_value_map_applies_to_the_side_it_names(side, expected) -> None:
    mapping = {"A": "assigned", "1": "one"}
    rules = [step("status", value_map=mapping, side=side), step("code", value_map=mapping, side=side)]
    assert normalised(rules, {"status": "A", "code": 1}, {"status": "A", "code": 1}) == expected


def test_value_map_translates_legacy_codes_by_default() -> None:
    assert step("status", value_map={"A": "assigned"}).side == "legacy"
    assert differences([step("state.status", value_map={"A": "assigned"})], {"status": "A"}, {"status": "assigned"}) == []


def test_value_map_leaves_unmapped_values_alone() -> None:
    assert normalised([step("s", value_map={"A": "assigned"})], {"s": "Z"}, {"s": "Z"}) == ({"s": "Z"}, {"s": "Z"})


def test_unordered_with_a_key_sorts_items_by_that_key() -> None:
    legacy = {"stops": [{"seq": 3, "eta": "c"}, {"seq": 1, "eta": "a"}, {"seq": 2, "eta": "b"}]}
    new = {"stops": [{"seq": 2, "eta": "b"}, {"seq": 3, "eta": "c"}, {"seq": 1, "eta": "a"}]}
    a, b = normalised([step("stops", unordered=True, key="seq")], legacy, new)
    assert [s["seq"] for s in a["stops"]] == [s["seq"] for s in b["stops"]] == [1, 2, 3]


def test_unordered_without_a_key_makes_order_irrelevant() -> None:
    a, b = normalised([step("tags", unordered=True)], {"tags": ["hazmat", "cold", "oversize"]},
                      {"tags": ["oversize", "hazmat", "cold"]})
    assert a == b
    assert differences([step("state.tags", unordered=True)], {"tags": [3, 1, 2]}, {"tags": [2, 3, 1]}) == []


def test_unordered_lists_that_differ_in_items_still_differ() -> None:
    assert differences([step("state.tags", unordered=True)], {"tags": [1, 2]}, {"tags": [2, 3]}) != []


@pytest.mark.parametrize(("raw", "coerced"), [("12.50", 12.5), ("12", 12), (" 7 ", 7), ("abc", "abc"), (12.5, 12.5)])
def test_coerce_number_reads_numeric_strings(raw, coerced) -> None:
    a, _ = normalised([step("w", coerce="number")], {"w": raw}, {})
    assert a["w"] == coerced and type(a["w"]) is type(coerced)


@pytest.mark.parametrize(("raw", "coerced"), [(1, True), (0, False), ("Y", True), ("N", False), ("yes", True),
                                              (True, True), (2, 2), ("maybe", "maybe")])
def test_coerce_boolean_reads_flags(raw, coerced) -> None:
    a, _ = normalised([step("hazmat", coerce="boolean")], {"hazmat": raw}, {})
    assert a["hazmat"] == coerced and type(a["hazmat"]) is type(coerced)


def test_coerce_makes_representations_of_one_value_equal() -> None:
    assert differences([step("state.hazmat", coerce="boolean")], {"hazmat": "Y"}, {"hazmat": True}) == []
    assert differences([step("state.weight", coerce="number")], {"weight": "12.50"}, {"weight": 12.5}) == []
    assert differences([step("state.ref", coerce="string")], {"ref": 12}, {"ref": "12"}) == []


@pytest.mark.parametrize(("tolerance", "legacy", "new", "equal"), [
    (Tolerance(absolute=0.01), 10.0, 10.005, True),
    (Tolerance(absolute=0.01), 10.0, 9.995, True),
    (Tolerance(absolute=0.01), 10.0, 10.02, False),
    (Tolerance(relative=0.01), 100, 100.9, True),
    (Tolerance(relative=0.01), 100, 102, False),
    (Tolerance(absolute=1), 5, "5.5", False),  # a string is not a number: coerce first
])
def test_tolerance_makes_close_numbers_equal_and_leaves_others(tolerance, legacy, new, equal) -> None:
    found = differences([step("state.weight", tolerance=tolerance)], {"weight": legacy}, {"weight": new})
    assert (found == []) is equal


def test_timestamp_takes_naive_times_in_the_assumed_time_zone() -> None:
    rule = step("state.eta", timestamp=TimestampRule(assume_timezone="America/Chicago"))
    # 2 November 2026 is after the end of daylight saving time: Chicago is UTC-6.
    assert differences([rule], {"eta": "2026-11-02T08:00:00"}, {"eta": "2026-11-02T14:00:00Z"}) == []
    assert differences([rule], {"eta": "2026-11-02T08:00:00"}, {"eta": "2026-11-02T13:00:00Z"}) != []


def test_timestamp_compares_instants_not_spellings() -> None:
    rule = step("state.eta", timestamp=TimestampRule())
    assert differences([rule], {"eta": "2026-11-02 15:00:00+01:00"}, {"eta": "2026-11-02T14:00:00.000Z"}) == []


@pytest.mark.parametrize(("new", "equal"), [("2026-11-02T14:00:00.004Z", True), ("2026-11-02T14:00:00.010Z", False)])
def test_timestamp_tolerance_in_milliseconds(new, equal) -> None:
    rule = step("state.eta", timestamp=TimestampRule(tolerance_ms=5))
    assert (differences([rule], {"eta": "2026-11-02T14:00:00.000Z"}, {"eta": new}) == []) is equal


def test_redact_keeps_equality_and_removes_the_value() -> None:
    legacy = {"driver": {"name": "Ann Lee", "phone": "555-0100"}, "history": [{"phone": "555-0199"}]}
    new = {"driver": {"name": "Ann Lee", "phone": "555-0111"}, "history": [{"phone": "555-0199"}]}
    rules = [step("driver.name", redact=True), step("**.phone", redact=True)]
    assert Normaliser(rules).redact(KIND, legacy, new) is True
    assert legacy["driver"]["name"] == new["driver"]["name"]
    assert legacy["history"] == new["history"]
    assert legacy["driver"]["phone"] != new["driver"]["phone"]
    text = json.dumps([legacy, new])
    assert not any(secret in text for secret in ("Ann Lee", "555-0100", "555-0111", "555-0199"))


def test_redact_masks_a_whole_object() -> None:
    legacy, new = {"driver": {"name": "Ann", "phone": "555"}}, {"driver": {"name": "Ann", "phone": "555"}}
    Normaliser([step("driver", redact=True)]).redact(KIND, legacy, new)
    assert legacy == new and "Ann" not in json.dumps(legacy)


def test_redaction_is_left_to_redact_not_apply() -> None:
    assert normalised([step("name", redact=True)], {"name": "Ann"}, {"name": "Ann"}) == ({"name": "Ann"}, {"name": "Ann"})


def test_a_kept_pair_never_holds_a_redacted_value() -> None:
    pair = make_pair({"driver_name": "Ann Lee", "zone": "chi"}, {"driver_name": "Bob Ray", "zone": "CHI"})
    result = Comparator(Normaliser([step("**.driver_name", redact=True)]), keep_pairs=True).compare(pair)
    kept = zlib.decompress(result.stored_pair).decode()
    assert "Ann Lee" not in kept and "Bob Ray" not in kept
    assert {d.path for d in result.differences} == {"state.driver_name", "state.zone"}
    assert not any("Ann Lee" in str(d.legacy) for d in result.differences)


def test_commands_limit_a_step_to_those_command_kinds() -> None:
    rules = [step("state.name", trim=True, commands=["assign_load", "reassign_load"])]
    for kind, matched in (("assign_load", True), ("reassign_load", True), ("cancel_load", False)):
        assert (differences(rules, {"name": "Ann "}, {"name": "Ann"}, kind=kind) == []) is matched


def test_double_star_matches_at_any_depth() -> None:
    legacy = {"driver_name": "Ann ", "load": {"driver_name": "Bob ", "legs": [[{"driver_name": "Cy "}]]}}
    new = {"driver_name": "Ann", "load": {"driver_name": "Bob", "legs": [[{"driver_name": "Cy"}]]}}
    a, b = normalised([step("**.driver_name", trim=True)], legacy, new)
    assert a == b == new


def test_double_star_in_the_middle_matches_zero_or_more_segments() -> None:
    legacy = {"load": {"eta": "A", "stops": [{"eta": "B"}]}, "eta": "C"}
    a, _ = normalised([step("load.**.eta", casefold=True)], legacy, {})
    assert a == {"load": {"eta": "a", "stops": [{"eta": "b"}]}, "eta": "C"}


def test_single_star_matches_one_key() -> None:
    a, _ = normalised([step("*.zone", casefold=True)], {"zone": "CHI", "load": {"zone": "CHI", "x": {"zone": "CHI"}}}, {})
    assert a == {"zone": "CHI", "load": {"zone": "chi", "x": {"zone": "CHI"}}}


def test_any_index_walks_every_item_on_both_sides_even_when_lengths_differ() -> None:
    legacy = {"stops": [{"name": "A "}, {"name": "B "}, {"name": "C "}]}
    new = {"stops": [{"name": " A"}]}
    a, b = normalised([step("stops[*].name", trim=True)], legacy, new)
    assert a == {"stops": [{"name": "A"}, {"name": "B"}, {"name": "C"}]}
    assert b == {"stops": [{"name": "A"}]}


def test_a_concrete_index_touches_only_that_item() -> None:
    a, b = normalised([step("stops[1]", trim=True)], {"stops": [" a ", " b "]}, {"stops": [" a "]})
    assert a == {"stops": [" a ", "b"]} and b == {"stops": [" a "]}


@pytest.mark.parametrize("rule", [
    step("eta", timestamp=TimestampRule(assume_timezone="America/Chicago")),
    step("eta", tolerance=Tolerance(absolute=1)),
    step("eta", null_equals_empty=True),
    step("eta", value_map={"x": "y"}, side="both"),
    step("eta", coerce="string"),
    step("eta", trim=True),
    step("*", coerce="number"),
    step("stops[*].eta", trim=True),
], ids=lambda s: f"{s.path}:{'+'.join(s.actions)}")
def test_a_field_missing_on_one_side_stays_missing(rule) -> None:
    legacy = {"eta": "2026-11-02T08:00:00", "stops": [{"eta": " x"}, {}]}
    a, b = normalised([rule], legacy, {"stops": [{}]})
    assert "eta" not in b and b["stops"] == [{}] and "eta" not in a["stops"][1]
    a, b = normalised([rule], {"stops": [{}]}, legacy)
    assert "eta" not in a and a["stops"] == [{}]


def test_ignore_removes_the_field_on_both_sides() -> None:
    legacy = {"load": {"updated_at": 1, "zone": "chi"}, "stops": [{"eta": "a", "seq": 1}, {"eta": "b", "seq": 2}]}
    new = {"load": {"updated_at": 2, "zone": "chi"}, "stops": [{"eta": "c", "seq": 1}]}
    a, b = normalised([step("**.updated_at", ignore=True), step("stops[*].eta", ignore=True)], legacy, new)
    assert a == {"load": {"zone": "chi"}, "stops": [{"seq": 1}, {"seq": 2}]}
    assert b == {"load": {"zone": "chi"}, "stops": [{"seq": 1}]}


def test_ignoring_fields_of_list_items_leaves_their_other_differences() -> None:
    legacy = {"stops": [{"seq": 1, "eta": "08:00", "city": "Joliet"}, {"seq": 2, "eta": "09:00", "city": "Gary"}]}
    new = {"stops": [{"seq": 1, "eta": "08:01", "city": "joliet"}, {"seq": 2, "eta": "09:02", "city": "Gary"}]}
    found = differences([step("state.stops[*].eta", ignore=True)], legacy, new)
    assert [d.path for d in found] == ["state.stops[0].city"]


# --- bugs found by the properties above, fixed ------------------------------------------------------------

def test_coerce_number_keeps_large_integers_exact() -> None:
    a, _ = normalised([step("id", coerce="number")], {"id": "9007199254740993"}, {})
    assert a["id"] == 9007199254740993
    assert differences([step("state.id", coerce="number")], {"id": "9007199254740993"}, {"id": 9007199254740993}) == []


@pytest.mark.parametrize("rule", [step("state.ids", unordered=True), step("state.ids", redact=True)], ids=["unordered", "redact"])
def test_integers_beyond_64_bits_are_normalised_like_any_other(rule) -> None:
    result = Comparator(Normaliser([rule]), keep_pairs=True).compare(make_pair({"ids": [2**70, 1]}, {"ids": [2**70, 1]}))
    assert result.matched


def test_timestamp_rule_survives_sentinel_dates() -> None:
    rule = step("state.valid_to", timestamp=TimestampRule(assume_timezone="America/Chicago"))
    assert differences([rule], {"valid_to": "9999-12-31T23:59:59"}, {"valid_to": "9999-12-31T23:59:59"}) == []


def test_unordered_holds_whatever_the_order_of_the_rule_files() -> None:
    rules = [step("state.tags", unordered=True), step("state.tags[*]", trim=True)]
    assert differences(rules, {"tags": [" b", "a"]}, {"tags": ["a", "b"]}) == []


def test_steps_apply_in_rule_order_also_the_first_time_a_double_star_path_is_seen() -> None:
    rules = [step("**.zone", value_map={" CHI ": "chicago"}, side="both"), step("zone", casefold=True)]
    warmed = Normaliser(rules)
    warmed.apply(KIND, {"zone": "gary"}, {"zone": "gary"})
    legacy, new = {"zone": " CHI "}, {"zone": " CHI "}
    warmed.apply(KIND, legacy, new)
    assert (legacy, new) == ({"zone": "chicago"}, {"zone": "chicago"})
    assert normalised(rules, {"zone": " CHI "}, {"zone": " CHI "}) == (legacy, new)


def test_unordered_at_a_double_star_glob_makes_nested_order_irrelevant() -> None:
    legacy = {"a": [{"a": [2, 1]}, {"a": [1, 3]}]}
    new = {"a": [{"a": [1, 3]}, {"a": [1, 2]}]}
    assert differences([step("**.a", unordered=True)], legacy, new) == []


def test_redacting_twice_is_redacting_once() -> None:
    rules = Normaliser([step("name", redact=True)])
    legacy, new = {"name": "Ann"}, {"name": "Ann"}
    rules.redact(KIND, legacy, new)
    once = copy.deepcopy(legacy)
    rules.redact(KIND, legacy, new)
    assert legacy == once


@pytest.mark.parametrize("rule", [
    step("state.w", coerce="string"),
    step("state.w", value_map={"12": "twelve"}, side="both"),
    step("state.w", redact=True),
], ids=["coerce-string", "value-map", "redact"])
def test_a_rule_never_makes_equal_numbers_differ(rule) -> None:
    assert differences([], {"w": 12}, {"w": 12.0}) == []
    pair = make_pair({"w": 12}, {"w": 12.0})
    assert Comparator(Normaliser([rule]), keep_pairs=True).compare(pair).differences == []


@pytest.mark.parametrize("key", ["driver_name", "x.y", 'say "hi"', "café", "*", "[0]"])
def test_a_difference_ignored_at_its_reported_path_is_gone(key) -> None:
    path = differences([], {key: 1}, {key: 2})[0].path
    assert differences([step(path, ignore=True)], {key: 1}, {key: 2}) == []


@pytest.mark.parametrize("key", ["C:\\tmp", "line\nbreak"], ids=["backslash", "newline"])
def test_a_key_with_an_escaped_character_can_be_ignored_at_its_reported_path(key) -> None:
    path = differences([], {key: 1}, {key: 2})[0].path
    assert differences([step(path, ignore=True)], {key: 1}, {key: 2}) == []
