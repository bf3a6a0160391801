"""The new dispatch engine: in-memory state, Decimal money, idempotent on the dispatch token.

It implements the same HTTP contract as the legacy service (shadow/demo/README.md) the way a
team writing it today would: lower-case zone codes, UTC everywhere, real booleans and enums,
null for "no value", stops ordered by sequence, ties broken by driver id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from aiohttp import web

from shadow.config import KafkaTarget

from shadow.demo.roster import (
    DRIVERS,
    HOME_DEPOT,
    KM_PER_CELL,
    PER_KG_RATE,
    AssignLoad,
    CancelLoad,
    CreateLoad,
    DispatchError,
    Driver,
    ReassignLoad,
    UpdateStopEta,
    decode_body,
    error_middleware,
    grid_cells,
    iso_ms,
    iso_seconds,
    json_response,
    stop_seq,
    zone_for,
)

__all__ = ["new_app", "DispatchEngine"]

_CENT = Decimal("0.01")
_KM_PER_CELL = float(KM_PER_CELL)
# Drivers per zone in driver-id order: ties on distance go to the lowest driver id.
_ROSTER: dict[str, list[Driver]] = {}
for _d in sorted(DRIVERS, key=lambda d: d.driver_id):
    _ROSTER.setdefault(_d.zone, []).append(_d)


@dataclass(slots=True)
class _Stop:
    seq: int
    address: str
    eta: datetime | None = None


@dataclass(slots=True)
class _Assignment:
    assignment_id: str
    driver: Driver
    distance_km: float
    assigned_at: datetime


@dataclass(slots=True)
class _Load:
    load_id: str
    zone: str
    weight_kg: int | float
    hazmat: bool
    price: Decimal
    pickup_at: datetime
    notes: str | None
    origin: tuple[int, int]
    created_at: datetime
    updated_at: datetime
    stops: dict[int, _Stop] = field(default_factory=dict)
    status: str = "open"
    cancel_reason: str | None = None
    depot: str | None = None
    assignment: _Assignment | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


class DispatchEngine:
    """The engine's state and commands; the aiohttp app is a thin skin over it."""

    def __init__(self) -> None:
        self.loads: dict[str, _Load] = {}

    def _load(self, load_id: str) -> _Load:
        load = self.loads.get(load_id)
        if load is None:
            raise DispatchError(404, f"load {load_id!r} not found")
        return load

    def state(self, load_id: str) -> dict[str, Any]:
        """The load state document."""
        load = self._load(load_id)
        a = load.assignment
        return {
            "load_id": load.load_id,
            "zone": load.zone,
            "status": load.status,
            "weight_kg": load.weight_kg,
            "hazmat": load.hazmat,
            "price": float(load.price),
            "pickup_at": iso_seconds(load.pickup_at),
            "notes": load.notes,
            "cancel_reason": load.cancel_reason,
            "depot": load.depot,
            "created_at": iso_ms(load.created_at),
            "updated_at": iso_ms(load.updated_at),
            "stops": [
                {"seq": s.seq, "address": s.address, "eta": None if s.eta is None else iso_ms(s.eta)}
                for s in sorted(load.stops.values(), key=lambda s: s.seq)
            ],
            "assignments": [] if a is None else [{
                "assignment_id": a.assignment_id,
                "driver_id": a.driver.driver_id,
                "driver_name": a.driver.name,
                "distance_km": a.distance_km,
                "assigned_at": iso_ms(a.assigned_at),
            }],
        }

    def create(self, body: CreateLoad) -> dict[str, Any]:
        """Create a load; price = base + weight x rate, rounded half-even (banker's)."""
        if body.load_id in self.loads:
            raise DispatchError(409, f"load {body.load_id!r} already exists")
        zone = zone_for(body.zone)
        price = zone.base_price + Decimal(str(body.weight_kg)) * PER_KG_RATE
        now = _now()
        self.loads[body.load_id] = _Load(
            load_id=body.load_id,
            zone=zone.code,
            weight_kg=body.weight_kg,
            hazmat=body.hazmat,
            price=price.quantize(_CENT, rounding=ROUND_HALF_EVEN),
            pickup_at=body.pickup_at,
            notes=body.notes,
            origin=(body.origin.x, body.origin.y),
            created_at=now,
            updated_at=now,
            stops={s.seq: _Stop(s.seq, s.address) for s in body.stops},
        )
        return self.state(body.load_id)

    def _give(self, load: _Load, driver: Driver) -> dict[str, Any]:
        cells = grid_cells(driver.x, driver.y, *load.origin)
        now = _now()
        load.assignment = _Assignment(str(uuid.uuid4()), driver, cells * _KM_PER_CELL, now)
        load.status = "assigned"
        load.depot = HOME_DEPOT
        load.updated_at = now
        return {
            "load_id": load.load_id,
            "assignment_id": load.assignment.assignment_id,
            "driver_id": driver.driver_id,
            "driver_name": driver.name,
            "distance_km": load.assignment.distance_km,
            "depot": load.depot,
            "status": load.status,
        }

    def _nearest(self, load: _Load, exclude: str | None = None) -> Driver:
        candidates = [d for d in _ROSTER[load.zone] if d.driver_id != exclude]
        if not candidates:
            raise DispatchError(409, "no other driver available in this zone")
        # min() keeps the first of equals, and the roster is in driver-id order.
        return min(candidates, key=lambda d: grid_cells(d.x, d.y, *load.origin))

    def assign(self, load_id: str, body: AssignLoad) -> dict[str, Any]:
        """Assign the load (to the nearest driver unless one is named); replaces any active one."""
        load = self._load(load_id)
        if load.status == "cancelled":
            raise DispatchError(409, f"load {load_id!r} is cancelled")
        if body.driver_id is None:
            return self._give(load, self._nearest(load))
        for driver in _ROSTER[load.zone]:
            if driver.driver_id == body.driver_id:
                return self._give(load, driver)
        raise DispatchError(400, f"driver {body.driver_id!r} is not on the roster of this zone")

    def reassign(self, load_id: str, body: ReassignLoad) -> dict[str, Any]:
        """Give the load to the nearest driver other than the current one."""
        load = self._load(load_id)
        if load.status == "cancelled":
            raise DispatchError(409, f"load {load_id!r} is cancelled")
        if load.assignment is None:
            raise DispatchError(409, f"load {load_id!r} has no active assignment")
        return self._give(load, self._nearest(load, exclude=load.assignment.driver.driver_id))

    def cancel(self, load_id: str, body: CancelLoad) -> dict[str, Any]:
        """Cancel the load and end its assignment; no reason stays null."""
        load = self._load(load_id)
        if load.status == "cancelled":
            raise DispatchError(409, f"load {load_id!r} is already cancelled")
        load.status = "cancelled"
        load.cancel_reason = body.reason
        load.assignment = None
        load.updated_at = _now()
        return self.state(load_id)

    def update_eta(self, load_id: str, seq: int, body: UpdateStopEta) -> dict[str, Any]:
        """Set a stop's ETA, kept to the millisecond."""
        load = self._load(load_id)
        stop = load.stops.get(seq)
        if stop is None:
            raise DispatchError(404, f"load {load_id!r} has no stop {seq}")
        stop.eta = body.eta
        load.updated_at = _now()
        return self.state(load_id)


def new_app(kafka: KafkaTarget | None = None) -> web.Application:
    """The new dispatch engine as an aiohttp application (fresh, empty state).

    With `kafka`, commands also arrive on its commands topic and answers go to its
    outcomes topic (shadow.demo.new_kafka); reads stay on HTTP.
    """
    engine = DispatchEngine()
    # Dispatch token -> (HTTP status, body) of the first successful answer: a retried
    # command gets the original result back instead of being applied twice.
    answered: dict[str, tuple[int, dict[str, Any]]] = {}
    app = web.Application(middlewares=[error_middleware])

    def idempotent(request: web.Request, status: int, run: Any) -> web.Response:
        token = request.headers.get("X-Dispatch-Token")
        if token and token in answered:
            return json_response(answered[token][1], answered[token][0])
        doc = run()
        if token:
            answered[token] = (status, doc)
        return json_response(doc, status)

    async def health(request: web.Request) -> web.Response:
        return json_response({"status": "ok", "target": "new"})

    async def post_load(request: web.Request) -> web.Response:
        body = decode_body(await request.read(), CreateLoad)
        return idempotent(request, 201, lambda: engine.create(body))

    async def get_load(request: web.Request) -> web.Response:
        return json_response(engine.state(request.match_info["load_id"]))

    async def post_assign(request: web.Request) -> web.Response:
        body = decode_body(await request.read(), AssignLoad)
        return idempotent(request, 200, lambda: engine.assign(request.match_info["load_id"], body))

    async def post_reassign(request: web.Request) -> web.Response:
        body = decode_body(await request.read(), ReassignLoad)
        load_id = request.match_info["load_id"]
        return idempotent(request, 200, lambda: engine.reassign(load_id, body))

    async def post_cancel(request: web.Request) -> web.Response:
        body = decode_body(await request.read(), CancelLoad)
        return idempotent(request, 200, lambda: engine.cancel(request.match_info["load_id"], body))

    async def put_eta(request: web.Request) -> web.Response:
        seq = stop_seq(request)
        body = decode_body(await request.read(), UpdateStopEta)
        load_id = request.match_info["load_id"]
        return idempotent(request, 200, lambda: engine.update_eta(load_id, seq, body))

    app.router.add_get("/health", health)
    app.router.add_post("/loads", post_load)
    app.router.add_get("/loads/{load_id}", get_load)
    app.router.add_post("/loads/{load_id}/assign", post_assign)
    app.router.add_post("/loads/{load_id}/reassign", post_reassign)
    app.router.add_post("/loads/{load_id}/cancel", post_cancel)
    app.router.add_put("/loads/{load_id}/stops/{seq}/eta", put_eta)
    if kafka is not None:
        from shadow.demo.new_kafka import attach_kafka

        attach_kafka(app, engine, answered, kafka)
    return app
