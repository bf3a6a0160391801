"""Synthetic pairs shaped like the reference pair's, for benchmarks (deterministic for a seed)."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

from rules.rulefile import parse_rule_file
from shadow.model import Command, Outcome, Pair, Status, Target, to_json

T0 = datetime(2026, 11, 2, 11, 0, tzinfo=timezone.utc)
ZONES = ["chi", "nyc", "den", "lax"]
NAMES = ["Ann Lee", "Bo Chen", "Carla Brooks", "Dev Patel", "Eli Moss", "Femi Lopez"]
KINDS = ["create_load", "assign_load", "update_stop_eta", "reassign_load", "cancel_load"]

# About ten rules, as a migration team has them a few weeks in: noise ignored, legacy habits normalised.
RULES = """
[[normalise]]
path = "**.created_at"
ignore = true
[[normalise]]
path = "**.updated_at"
ignore = true
[[normalise]]
path = "**.assigned_at"
ignore = true
[[normalise]]
path = "**.assignment_id"
ignore = true
[[normalise]]
path = "*.zone"
casefold = true
[[normalise]]
path = "*.status"
value_map = { O = "open", A = "assigned", C = "cancelled" }
[[normalise]]
path = "*.hazmat"
coerce = "boolean"
[[normalise]]
path = "*.weight_kg"
coerce = "number"
[[normalise]]
path = "*.assignments[*].driver_name"
trim = true
[[normalise]]
path = "*.stops"
unordered = true
key = "seq"
[[normalise]]
path = "*.notes"
null_equals_empty = true
"""


def rules():
    """The benchmark's normalisation steps."""
    return parse_rule_file(RULES, "bench-rules.toml").normalise


def _documents(rng: random.Random, i: int, mismatch: bool) -> tuple[dict, dict]:
    zone = rng.choice(ZONES)
    weight = rng.randint(500, 30000)
    stops = [{"seq": s, "address": f"{rng.randint(100, 9999)} Main St", "eta": None} for s in (1, 2, 3)]
    name = rng.choice(NAMES)
    when = (T0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    price = round(90 + weight * 0.125, 2)
    base = {"load_id": f"L-{i:07d}", "weight_kg": weight, "price": price, "pickup_at": "2026-11-02T14:00:00Z",
            "cancel_reason": None, "depot": "DEPOT-1", "hazmat": False}
    legacy = {**base, "zone": zone.upper(), "status": "A", "weight_kg": f"{weight}.00", "hazmat": 0, "notes": "",
              "created_at": when, "updated_at": when, "stops": list(reversed(stops)),
              "assignments": [{"assignment_id": i, "driver_id": "D-01", "driver_name": name.ljust(20),
                               "distance_km": 3.9, "assigned_at": when}]}
    new = {**base, "zone": zone, "status": "assigned", "notes": None, "created_at": when[:-2] + "9Z",
           "updated_at": when[:-2] + "9Z", "stops": stops,
           "assignments": [{"assignment_id": str(uuid.UUID(int=rng.getrandbits(128))), "driver_id": "D-01",
                            "driver_name": name, "distance_km": 3.9, "assigned_at": when[:-2] + "9Z"}]}
    if mismatch:
        new["price"] = round(price + 0.01, 2)
    # Two systems rarely write their fields in the same order.
    return legacy, dict(sorted(new.items(), reverse=True))


def pairs(n: int, *, mismatch_rate: float = 0.01, seed: int = 1) -> list[bytes]:
    """n pairs as JSON bytes (decode them right before use: comparing changes a pair in place)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        legacy_doc, new_doc = _documents(rng, i, rng.random() < mismatch_rate)
        command = Command(kind=rng.choice(KINDS), token=str(uuid.UUID(int=rng.getrandbits(128))),
                          keys={"load_id": legacy_doc["load_id"]}, zone=new_doc["zone"],
                          received_at=T0 + timedelta(seconds=i))
        pair = Pair(command=command,
                    legacy=Outcome(target=Target.LEGACY, status=Status.OK, http_status=200, response=legacy_doc,
                                   state=legacy_doc, latency_ms=3.0),
                    new=Outcome(target=Target.NEW, status=Status.OK, http_status=200, response=new_doc,
                                state=new_doc, latency_ms=2.0))
        out.append(to_json(pair))
    return out
