"""The comparator: canonical-bytes fast path, deepdiff only on mismatch, stable fingerprints."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rules.compare as compare
from rules.compare import compare_pair, diff_documents, fingerprint_id, wildcard
from shadow.model import Command, Outcome, Pair, Status, Target

WHEN = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


def make_pair(legacy_state, new_state, *, kind="assign_load", token="t-1", legacy_response=None,
              new_response=None) -> Pair:
    return Pair(
        command=Command(kind=kind, token=token, zone="chi", keys={"load_id": "L-1"}, received_at=WHEN),
        legacy=Outcome(target=Target.LEGACY, status=Status.OK, http_status=200, response=legacy_response,
                       state=legacy_state, latency_ms=3.0),
        new=Outcome(target=Target.NEW, status=Status.OK, http_status=200, response=new_response,
                    state=new_state, latency_ms=2.0),
    )


json_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=15,
)


@given(json_docs)
def test_equal_outcomes_match_without_calling_deepdiff(doc) -> None:
    original = compare.DeepDiff
    compare.DeepDiff = None  # any call would fail loudly
    try:
        result = compare_pair(make_pair(doc, doc))
    finally:
        compare.DeepDiff = original
    assert result.matched and result.differences == []


@given(st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 3), min_size=1, max_size=6))
def test_key_order_never_matters(doc) -> None:
    reordered = dict(reversed(list(doc.items())))
    assert compare_pair(make_pair(doc, reordered)).matched


def test_mismatch_lists_each_difference_with_its_path_and_class() -> None:
    legacy = {"zone": "CHI", "driver_name": "Ann Lee             ", "hazmat": 0,
              "stops": [{"seq": 2, "eta": "2026-11-02T15:00:00.457Z"}, {"seq": 1, "eta": None}]}
    new = {"zone": "chi", "driver_name": "Ann Lee", "hazmat": False,
           "stops": [{"seq": 1, "eta": None}, {"seq": 2, "eta": "2026-11-02T15:00:00.458Z"}]}
    result = compare_pair(make_pair(legacy, new))
    found = {(d.path, d.pattern, d.transition) for d in result.differences}
    assert found == {
        ("state.zone", "state.zone", "case-only"),
        ("state.driver_name", "state.driver_name", "trailing-whitespace"),
        ("state.hazmat", "state.hazmat", "boolean-representation"),
        ("state.stops", "state.stops", "list-order"),
        ("state.stops[0].eta", "state.stops[*].eta", "sub-second-precision"),
    }
    assert not result.matched


def test_integer_and_float_of_one_value_are_equal() -> None:
    assert compare_pair(make_pair({"w": 12}, {"w": 12.0})).matched


def test_list_length_and_absent_fields() -> None:
    diffs = diff_documents({"a": [1, 2], "x": 1}, {"a": [1], "y": 2})
    assert {(d.pattern, d.change, d.transition) for d in diffs} == {
        ("a", "removed", "list-length"), ("x", "removed", "absent"), ("y", "added", "absent")}


def test_an_error_on_one_side_is_a_status_difference() -> None:
    pair = make_pair({"a": 1}, None)
    pair.new.status, pair.new.http_status = Status.TIMEOUT, None
    paths = {d.path for d in compare_pair(pair).differences}
    assert {"status", "http_status", "state"} <= paths


@given(st.lists(st.integers(0, 50), min_size=1, max_size=4))
def test_wildcard_replaces_every_index(indices) -> None:
    path = "state" + "".join(f".a[{i}]" for i in indices)
    assert wildcard(path) == "state" + ".a[*]" * len(indices)


def test_fingerprint_is_stable_across_runs_and_versions() -> None:
    # Frozen value: changing the fingerprint function would orphan every triaged quirk.
    assert fingerprint_id("assign_load", "state.driver_name", "changed", "trailing-whitespace") == "61efbb9498ab"


@given(st.text(max_size=10), st.text(max_size=10))
def test_fingerprint_ignores_concrete_values_and_indices(a, b) -> None:
    first = compare_pair(make_pair({"s": [{"v": a + " "}]}, {"s": [{"v": a}]}))
    second = compare_pair(make_pair({"s": [{"v": "x"}, {"v": b + " "}]}, {"s": [{"v": "x"}, {"v": b}]}))
    assert {d.fingerprint for d in first.differences} == {d.fingerprint for d in second.differences}


@pytest.mark.parametrize("kind", ["assign_load", "reassign_load"])
def test_fingerprint_includes_the_command_kind(kind) -> None:
    result = compare_pair(make_pair({"a": "x "}, {"a": "x"}, kind=kind))
    assert result.differences[0].fingerprint == fingerprint_id(kind, "state.a", "changed", "trailing-whitespace")
