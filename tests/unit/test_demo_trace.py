"""The demo trace generator: reproducible from its seed, and shaped like a real service day."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest

from shadow.demo import ZONES, generate_trace, write_trace
from shadow.model import Command, from_json

KINDS = {"create_load", "assign_load", "reassign_load", "cancel_load", "update_stop_eta"}


@pytest.fixture(scope="module")
def trace() -> list[Command]:
    return generate_trace(5000, seed=11)


def _local(command: Command) -> datetime:
    return command.received_at + timedelta(hours=ZONES[command.zone].utc_offset_hours)


def test_same_seed_writes_a_byte_identical_file(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert write_trace(a, 500, seed=3) == 500
    assert write_trace(b, 500, seed=3) == 500
    assert a.read_bytes() == b.read_bytes()


def test_different_seeds_write_different_files(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_trace(a, 500, seed=3)
    write_trace(b, 500, seed=4)
    assert a.read_bytes() != b.read_bytes()


def test_each_line_decodes_as_a_command(tmp_path):
    path = tmp_path / "t.jsonl"
    write_trace(path, 200, seed=5)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 200
    assert [from_json(line, Command).kind for line in lines] == [
        c.kind for c in generate_trace(200, seed=5)
    ]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 20, 99])
def test_trace_has_exactly_the_requested_length(n):
    assert len(generate_trace(n, seed=1)) == n


def test_all_kinds_appear_in_roughly_the_documented_mix(trace):
    counts = Counter(c.kind for c in trace)
    assert set(counts) == KINDS
    share = {kind: n / len(trace) for kind, n in counts.items()}
    assert 0.33 <= share["create_load"] <= 0.37
    assert 0.30 <= share["assign_load"] <= 0.34  # first attempts plus ~2 % retries
    assert 0.18 <= share["update_stop_eta"] <= 0.22
    assert 0.07 <= share["reassign_load"] <= 0.09
    assert 0.04 <= share["cancel_load"] <= 0.06


def test_commands_are_in_time_order_within_one_service_day(trace):
    times = [c.received_at for c in trace]
    assert times == sorted(times)
    assert times[0] >= datetime.fromisoformat("2026-11-02T11:00:00+00:00")
    assert times[-1] - times[0] <= timedelta(hours=24)


def test_every_zone_appears_lower_case_with_some_mixed_case_payloads(trace):
    assert {c.zone for c in trace} == set(ZONES)
    payload_zones = [c.payload["zone"] for c in trace]
    assert all(z.lower() == c.zone for z, c in zip(payload_zones, trace, strict=True))
    mixed = sum(z != z.lower() for z in payload_zones)
    assert 0.05 * len(trace) < mixed < 0.30 * len(trace)


def test_morning_surge_is_denser_than_the_rest_of_the_day(trace):
    creates = [c for c in trace if c.kind == "create_load"]
    surge = sum(6 <= _local(c).hour < 10 for c in creates)
    per_hour_surge = surge / 4
    per_hour_rest = (len(creates) - surge) / 14
    assert per_hour_surge > 2 * per_hour_rest


def test_some_heavy_loads_are_assigned_after_six_pm_local(trace):
    weight = {c.keys["load_id"]: c.payload["weight_kg"] for c in trace if c.kind == "create_load"}
    evening_heavy = [
        c for c in trace
        if c.kind == "assign_load" and weight[c.keys["load_id"]] > 20000
        and (
            datetime.fromisoformat(c.payload["requested_at"])
            + timedelta(hours=ZONES[c.zone].utc_offset_hours)
        ).hour >= 18
    ]
    assert evening_heavy


def test_retries_resend_the_same_assign_with_the_same_token_seconds_later(trace):
    by_token: dict[str, list[Command]] = {}
    for c in trace:
        by_token.setdefault(c.token, []).append(c)
    repeated = [cs for cs in by_token.values() if len(cs) > 1]
    assert 0.01 * len(trace) <= len(repeated) <= 0.03 * len(trace)
    for first, retry in repeated:
        assert first.kind == retry.kind == "assign_load"
        assert first.payload == retry.payload and first.keys == retry.keys
        assert timedelta(seconds=1) <= retry.received_at - first.received_at <= timedelta(seconds=10)


def test_every_command_on_a_load_comes_after_its_create(trace):
    created: set[str] = set()
    for c in trace:
        if c.kind == "create_load":
            assert c.keys["load_id"] not in created
            created.add(c.keys["load_id"])
        else:
            assert c.keys["load_id"] in created, c


def test_lifecycle_is_possible_assign_before_reassign_nothing_after_cancel(trace):
    assigned: set[str] = set()
    cancelled: set[str] = set()
    for c in trace:
        load_id = c.keys["load_id"]
        assert load_id not in cancelled, c
        if c.kind == "assign_load":
            assigned.add(load_id)
        elif c.kind == "reassign_load":
            assert load_id in assigned
        elif c.kind == "cancel_load":
            cancelled.add(load_id)


def test_payloads_match_the_http_contract(trace):
    for c in trace:
        assert c.payload["requested_at"].endswith("Z")
        if c.kind == "create_load":
            body = c.payload
            assert body["load_id"] == c.keys["load_id"]
            assert {"zone", "weight_kg", "hazmat", "pickup_at", "stops", "origin"} <= set(body)
            assert len({s["seq"] for s in body["stops"]}) == len(body["stops"])
        elif c.kind == "update_stop_eta":
            assert c.keys["seq"].isdigit() and c.payload["eta"].endswith("Z")
    creates = [c.payload for c in trace if c.kind == "create_load"]
    out_of_order = sum(
        [s["seq"] for s in p["stops"]] != sorted(s["seq"] for s in p["stops"]) for p in creates
    )
    without_notes = sum("notes" not in p for p in creates)
    assert 0.15 * len(creates) < out_of_order < 0.45 * len(creates)
    assert 0.25 * len(creates) < without_notes < 0.55 * len(creates)


def test_tokens_are_uuid4(trace):
    for c in trace[:200]:
        assert uuid.UUID(c.token).version == 4
