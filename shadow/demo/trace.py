"""A deterministic, realistic trace of dispatch commands for the reference pair.

One service day from 2026-11-02T11:00Z with a morning surge in each zone's local time, every
load's commands after its create_load, ~2 % of assigns retried with the same dispatch token a
few seconds later, and some heavy loads dispatched after 18:00 local. Same seed, same bytes.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from shadow.demo.roster import GRID_SIZE, ZONES, iso_ms, iso_seconds
from adapters.jsonl import write_commands
from shadow.model import Command

__all__ = ["generate_trace", "write_trace", "DAY_START", "MIX"]

DAY_START = datetime(2026, 11, 2, 11, 0, tzinfo=timezone.utc)
# Share of each command kind; "retry" is an assign_load re-sent with the same token.
MIX: dict[str, float] = {
    "create_load": 0.35,
    "assign_load": 0.30,
    "update_stop_eta": 0.20,
    "reassign_load": 0.08,
    "cancel_load": 0.05,
    "retry": 0.02,
}
_ZONE_SHARE = {"chi": 0.30, "nyc": 0.30, "den": 0.15, "lax": 0.25}
_SURGE = (6.0, 10.0)  # local hours of the morning surge
_SURGE_SHARE = 0.55
_OPEN, _CLOSE = 5.0, 21.5  # local hours loads are created outside the surge
_HEAVY_SHARE = 0.15
_NOTES = ["dock 4", "call ahead", "liftgate required", "rear entrance", "fragile", "gate code 1931"]
_STREETS = ["Main St", "Oak Ave", "Industrial Pkwy", "Harbor Rd", "Elm St", "Depot Way", "Mill Rd"]
_REASSIGN = ["driver sick", "truck breakdown", "hours of service", "customer request"]
_CANCEL = ["customer cancelled", "duplicate order", "weather", "shipper no-show"]


def _counts(total: int) -> dict[str, int]:
    """Split total over MIX by largest remainder, then keep the lifecycle possible."""
    exact = {kind: total * share for kind, share in MIX.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    by_remainder = sorted(MIX, key=lambda k: exact[k] - counts[k], reverse=True)
    for kind in by_remainder[: total - sum(counts.values())]:
        counts[kind] += 1
    # A load must exist before anything happens to it, and be assigned before a retry or
    # a reassign: surplus goes to create_load.
    for kind, limit in (("assign_load", "create_load"), ("cancel_load", "create_load"),
                        ("reassign_load", "assign_load"), ("retry", "assign_load")):
        excess = max(0, counts[kind] - counts[limit])
        counts[kind] -= excess
        counts["create_load"] += excess
    return counts


def _local_day_start(zone: str) -> datetime:
    """UTC instant of local midnight on the service day in zone."""
    return datetime(2026, 11, 2, tzinfo=timezone.utc) - timedelta(
        hours=ZONES[zone].utc_offset_hours
    )


def _payload_zone(rng: random.Random, zone: str) -> str:
    # Callers of the legacy system were never consistent about the case of zone codes.
    if rng.random() < 0.85:
        return zone
    return "".join(c.upper() if rng.random() < 0.5 else c for c in zone.capitalize())


def _millis(rng: random.Random, lo_minutes: float, hi_minutes: float) -> timedelta:
    return timedelta(milliseconds=rng.randint(int(lo_minutes * 60_000), int(hi_minutes * 60_000)))


def generate_trace(commands: int, seed: int) -> list[Command]:
    """A trace of exactly `commands` commands, ordered by received_at, reproducible from seed."""
    rng = random.Random(seed)
    counts = _counts(max(0, commands))
    zones = list(_ZONE_SHARE)
    shares = list(_ZONE_SHARE.values())

    created: list[tuple[datetime, str]] = []
    for _ in range(counts["create_load"]):
        zone = rng.choices(zones, shares)[0]
        opens = max(_OPEN, (DAY_START - _local_day_start(zone)).total_seconds() / 3600)
        lo, hi = _SURGE if rng.random() < _SURGE_SHARE else (opens, _CLOSE)
        at = _local_day_start(zone) + timedelta(milliseconds=int(rng.uniform(lo, hi) * 3_600_000))
        created.append((at, zone))
    created.sort()

    # (received_at, tie-break, kind, load index, extra)
    events: list[tuple[datetime, int, str, int, Any]] = []
    loads: list[dict[str, Any]] = []
    for i, (at, zone) in enumerate(created):
        stops = [{"seq": seq, "address": f"{rng.randint(1, 9999)} {rng.choice(_STREETS)}, "
                  f"{ZONES[zone].city}"} for seq in range(1, rng.randint(2, 4) + 1)]
        if rng.random() < 0.3:  # some shippers list stops in route order, not seq order
            rng.shuffle(stops)
            if [s["seq"] for s in stops] == sorted(s["seq"] for s in stops):
                stops.reverse()
        pickup = (at + timedelta(hours=rng.randint(1, 6))).replace(second=0, microsecond=0)
        pickup = pickup.replace(minute=pickup.minute // 15 * 15)
        heavy = rng.random() < _HEAVY_SHARE
        body: dict[str, Any] = {
            "load_id": f"L-{i + 1:06d}",
            "zone": zone,
            "weight_kg": rng.randint(20_001, 26_000) if heavy else rng.randint(800, 20_000),
            "hazmat": rng.random() < 0.08,
            "pickup_at": iso_seconds(pickup),
            "stops": stops,
            "origin": {"x": rng.randrange(GRID_SIZE), "y": rng.randrange(GRID_SIZE)},
        }
        if rng.random() < 0.6:
            body["notes"] = rng.choice(_NOTES)
        loads.append({"zone": zone, "body": body, "created": at, "last": at, "pickup": pickup})
        events.append((at, len(events), "create_load", i, None))

    indices = list(range(len(loads)))
    assigned = sorted(rng.sample(indices, counts["assign_load"]))
    for i in assigned:
        at = loads[i]["created"] + _millis(rng, 1, 20)
        loads[i]["assigned"] = loads[i]["last"] = at
        events.append((at, len(events), "assign_load", i, None))
    for i in rng.sample(assigned, counts["retry"]):
        at = loads[i]["assigned"] + timedelta(milliseconds=rng.randint(2_000, 8_000))
        loads[i]["last"] = max(loads[i]["last"], at)
        events.append((at, len(events), "retry", i, None))
    for i in rng.sample(assigned, counts["reassign_load"]):
        at = loads[i]["assigned"] + _millis(rng, 10, 180)
        loads[i]["last"] = max(loads[i]["last"], at)
        events.append((at, len(events), "reassign_load", i, None))
    eta_pool = assigned or indices
    for _ in range(counts["update_stop_eta"]):
        i = rng.choice(eta_pool)
        at = loads[i].get("assigned", loads[i]["created"]) + _millis(rng, 5, 180)
        loads[i]["last"] = max(loads[i]["last"], at)
        seq = rng.choice(loads[i]["body"]["stops"])["seq"]
        eta = loads[i]["pickup"] + _millis(rng, 30 * seq, 150 * seq)
        events.append((at, len(events), "update_stop_eta", i, (seq, eta)))
    for i in rng.sample(indices, counts["cancel_load"]):
        at = loads[i]["last"] + _millis(rng, 5, 60)
        events.append((at, len(events), "cancel_load", i, None))
    events.sort(key=lambda e: (e[0], e[1]))

    trace: list[Command] = []
    assign_of: dict[int, Command] = {}
    for at, _, kind, i, extra in events:
        load = loads[i]
        load_id = load["body"]["load_id"]
        if kind == "retry":
            # A client retry: the same request, same dispatch token, a few seconds later.
            first = assign_of[i]
            trace.append(Command(kind="assign_load", payload=first.payload, keys=first.keys,
                                 zone=first.zone, token=first.token, received_at=at))
            continue
        payload: dict[str, Any]
        keys = {"load_id": load_id}
        if kind == "create_load":
            payload = dict(load["body"])
        elif kind == "update_stop_eta":
            seq, eta = extra
            payload = {"eta": iso_ms(eta)}
            keys["seq"] = str(seq)
        elif kind == "assign_load":
            payload = {}
        else:
            payload = {}
            if rng.random() < (0.7 if kind == "reassign_load" else 0.5):
                payload["reason"] = rng.choice(_REASSIGN if kind == "reassign_load" else _CANCEL)
        payload["zone"] = _payload_zone(rng, load["zone"])
        payload["requested_at"] = iso_ms(at)
        token = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        command = Command(kind=kind, payload=payload, keys=keys, zone=load["zone"], token=token,
                          received_at=at)
        if kind == "assign_load":
            assign_of[i] = command
        trace.append(command)
    return trace


def write_trace(path: str | Path, commands: int, seed: int) -> int:
    """Write generate_trace(commands, seed) as JSONL (one Command a line); returns the count."""
    return write_commands(path, generate_trace(commands, seed))
