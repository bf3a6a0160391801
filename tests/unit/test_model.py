"""The model: typed commands, outcomes and pairs with a lossless JSON round trip."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadow.model import Command, ModelError, Outcome, Pair, Status, Target, from_json, to_json

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20) | \
    st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
aware_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                           timezones=st.just(timezone.utc))

commands = st.builds(
    Command,
    kind=st.sampled_from(["assign_load", "cancel_load", "create_load"]),
    payload=json_values,
    keys=st.dictionaries(st.sampled_from(["load_id", "seq"]), st.text(min_size=1, max_size=10), max_size=2),
    zone=st.none() | st.sampled_from(["chi", "nyc"]),
    token=st.none() | st.uuids().map(str),
    received_at=aware_times,
)
outcomes = st.builds(
    Outcome,
    target=st.sampled_from(Target), status=st.sampled_from(Status),
    http_status=st.none() | st.integers(100, 599), response=json_values, state=json_values,
    latency_ms=st.floats(0, 1e6), error=st.none() | st.text(max_size=30),
)


@given(commands, outcomes, outcomes)
def test_pair_survives_a_json_round_trip(command: Command, legacy: Outcome, new: Outcome) -> None:
    pair = Pair(command=command, legacy=legacy, new=new)
    assert from_json(to_json(pair), Pair) == pair


def test_command_without_dispatch_token_gets_a_uuid() -> None:
    decoded = from_json(b'{"kind": "assign_load", "payload": {"zone": "chi"}}', Command)
    assert uuid.UUID(decoded.token).version == 4
    assert Command(kind="cancel_load").token != Command(kind="cancel_load").token
    assert from_json(b'{"kind": "x", "token": null}', Command).token
    assert from_json(b'{"kind": "x", "token": ""}', Command).token


def test_callers_own_token_is_kept() -> None:
    assert from_json(b'{"kind": "x", "token": "caller-42"}', Command).token == "caller-42"


def test_naive_received_at_is_taken_as_utc() -> None:
    command = Command(kind="x", received_at=datetime(2026, 11, 2, 8, 0))
    assert command.received_at.utcoffset() == timedelta(0)


def test_bad_json_names_the_field() -> None:
    with pytest.raises(ModelError, match="kind"):
        from_json(b'{"payload": {}}', Command)
    with pytest.raises(ModelError, match="status"):
        from_json(b'{"target": "legacy", "status": "fine"}', Outcome)
    with pytest.raises(ModelError, match="not valid JSON"):
        from_json(b'{"kind": ', Command)


def test_model_imports_nothing_else_of_ours() -> None:
    import ast
    from pathlib import Path

    import shadow.model

    tree = ast.parse(Path(shadow.model.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {"shadow", "adapters", "rules", "reports", "cutover"}
    assert not {m for m in imported if m and m.split(".")[0] in ours}
