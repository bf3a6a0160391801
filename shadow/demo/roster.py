"""What both reference dispatch systems share: zones, the driver roster, geometry, the HTTP contract.

Everything here is deterministic: the roster is drawn from a fixed seed at import, so the
legacy service, the new engine and the trace generator all see the same drivers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Awaitable, Callable, TypeVar

import msgspec
import orjson
from aiohttp import web

__all__ = [
    "ZONES",
    "DRIVERS",
    "LEGACY_ROSTER_ORDER",
    "GRID_SIZE",
    "KM_PER_CELL",
    "PER_KG_RATE",
    "HOME_DEPOT",
    "Zone",
    "Driver",
    "Point",
    "StopIn",
    "CreateLoad",
    "AssignLoad",
    "ReassignLoad",
    "CancelLoad",
    "UpdateStopEta",
    "DispatchError",
    "grid_cells",
    "zone_for",
    "decode_body",
    "iso_ms",
    "iso_seconds",
    "as_utc",
    "json_response",
    "error_middleware",
]


@dataclass(frozen=True, slots=True)
class Zone:
    """A dispatch zone: its code, city, fixed UTC offset (no DST in the demo) and base price."""

    code: str
    city: str
    utc_offset_hours: int
    base_price: Decimal


@dataclass(frozen=True, slots=True)
class Driver:
    """A driver on the roster, parked at an integer grid cell of their zone."""

    driver_id: str
    name: str
    zone: str
    x: int
    y: int


ZONES: dict[str, Zone] = {
    "chi": Zone("chi", "Chicago", -6, Decimal("85")),
    "nyc": Zone("nyc", "New York", -5, Decimal("95")),
    "den": Zone("den", "Denver", -7, Decimal("70")),
    "lax": Zone("lax", "Los Angeles", -8, Decimal("90")),
}
# A small integer grid with Manhattan distance makes equal distances (ties) common on purpose.
GRID_SIZE = 10
DRIVERS_PER_ZONE = 10
# 1.3 km per cell: exact in DECIMAL, but n * 1.3 in binary float is off by an epsilon for
# several small n (3 * 1.3 == 3.9000000000000004).
KM_PER_CELL = Decimal("1.3")
# Three decimals, so weight * rate often ends in an exact 5 at the third decimal.
PER_KG_RATE = Decimal("0.125")
HOME_DEPOT = "DEPOT-1"

_FIRST = ["Ana", "Ben", "Carla", "Dmitri", "Elif", "Femi", "Grace", "Hugo", "Ines", "Jamal",
          "Kenji", "Lena", "Marco", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tomas"]
_LAST = ["Alvarez", "Brooks", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
         "Ivanova", "Jensen", "Kowalski", "Lopez", "Moreau", "Novak", "Okafor", "Patel"]


def _draw_roster() -> tuple[list[Driver], list[Driver]]:
    rng = random.Random(20120401)  # fixed: the roster is part of the demo's contract
    drivers: list[Driver] = []
    names: set[str] = set()
    for zone in ZONES:
        for n in range(1, DRIVERS_PER_ZONE + 1):
            name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            while name in names:
                name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            names.add(name)
            x, y = rng.randrange(GRID_SIZE), rng.randrange(GRID_SIZE)
            drivers.append(Driver(f"D-{zone.upper()}-{n:02d}", name, zone, x, y))
    # The legacy roster was bulk-loaded from an HR export in no particular order; that
    # insertion order is what legacy's ties fall back to.
    order = drivers[:]
    rng.shuffle(order)
    return drivers, order


DRIVERS, LEGACY_ROSTER_ORDER = _draw_roster()


def grid_cells(ax: int, ay: int, bx: int, by: int) -> int:
    """Manhattan distance in grid cells."""
    return abs(ax - bx) + abs(ay - by)


# --- the HTTP contract both services implement -------------------------------------------


class DispatchError(Exception):
    """A request the service refuses; carries the HTTP status and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Point(msgspec.Struct, forbid_unknown_fields=False):
    """A grid cell."""

    x: int
    y: int


class StopIn(msgspec.Struct):
    """A stop as sent on create."""

    seq: int
    address: str


class CreateLoad(msgspec.Struct, kw_only=True):
    """Body of POST /loads."""

    load_id: str
    zone: str
    weight_kg: int | float
    pickup_at: datetime
    stops: list[StopIn]
    origin: Point
    requested_at: datetime
    hazmat: bool = False
    notes: str | None = None


class AssignLoad(msgspec.Struct, kw_only=True):
    """Body of POST /loads/{load_id}/assign."""

    requested_at: datetime
    zone: str | None = None
    driver_id: str | None = None


class ReassignLoad(msgspec.Struct, kw_only=True):
    """Body of POST /loads/{load_id}/reassign."""

    requested_at: datetime
    zone: str | None = None
    reason: str | None = None


class CancelLoad(msgspec.Struct, kw_only=True):
    """Body of POST /loads/{load_id}/cancel."""

    requested_at: datetime
    zone: str | None = None
    reason: str | None = None


class UpdateStopEta(msgspec.Struct, kw_only=True):
    """Body of PUT /loads/{load_id}/stops/{seq}/eta."""

    eta: datetime
    requested_at: datetime
    zone: str | None = None


B = TypeVar("B", CreateLoad, AssignLoad, ReassignLoad, CancelLoad, UpdateStopEta)
_decoders: dict[type, msgspec.json.Decoder] = {}


def zone_for(code: str) -> Zone:
    """The zone for a code in any letter case; 400 when unknown."""
    zone = ZONES.get(code.strip().lower())
    if zone is None:
        raise DispatchError(400, f"unknown zone {code!r}; known zones: {', '.join(ZONES)}")
    return zone


def decode_body(raw: bytes, kind: type[B]) -> B:
    """Decode and validate a request body; a DispatchError(400) names the bad field."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        body = decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DispatchError(400, f"bad request body: {exc}") from None
    if body.zone is not None:
        zone_for(body.zone)
    if isinstance(body, CreateLoad):
        if not body.load_id.strip():
            raise DispatchError(400, "load_id must not be empty")
        if not 0 < body.weight_kg < 100_000:
            raise DispatchError(400, "weight_kg must be between 0 and 100000")
        seqs = [s.seq for s in body.stops]
        if not seqs or len(set(seqs)) != len(seqs):
            raise DispatchError(400, "stops must be non-empty with distinct seq numbers")
    return body


def stop_seq(request: web.Request) -> int:
    """The {seq} of a stop's path as an integer, or a 400 that says what was sent."""
    try:
        return int(request.match_info["seq"])
    except ValueError:
        raise DispatchError(400, f"stop seq must be an integer, not {request.match_info['seq']!r}") from None


def as_utc(value: datetime) -> datetime:
    """A timestamp in UTC; naive values are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso_ms(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and 'Z': 2026-11-02T15:04:05.123Z."""
    value = as_utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_seconds(value: datetime) -> str:
    """ISO 8601 UTC to the second with 'Z': 2026-11-02T14:00:00Z."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_response(doc: Any, status: int = 200) -> web.Response:
    """A JSON response encoded with orjson (the services sit on the replay's hot path)."""
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn refusals and surprises into JSON errors; never a traceback to the caller."""
    try:
        return await handler(request)
    except DispatchError as exc:
        return json_response({"error": exc.message}, exc.status)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return json_response({"error": exc.reason}, exc.status)
        raise
    except Exception as exc:  # noqa: BLE001 - a demo service must keep answering
        return json_response({"error": f"internal error: {type(exc).__name__}"}, 500)
