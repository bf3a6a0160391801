"""The legacy dispatch service: a 14-year-old SQL-Server-era monolith, state in SQLite.

The schema and SQL mimic what the original ran on SQL Server (CHAR columns, BIT flags,
DATETIME, DECIMAL, a trigger from 2014, stored procedures without ORDER BY tie-breaks).
Its quirks are not switches: they fall out of that schema and SQL. README.md lists them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from aiohttp import web

from shadow.demo.roster import (
    KM_PER_CELL,
    LEGACY_ROSTER_ORDER,
    PER_KG_RATE,
    ZONES,
    AssignLoad,
    CancelLoad,
    CreateLoad,
    DispatchError,
    ReassignLoad,
    UpdateStopEta,
    as_utc,
    decode_body,
    error_middleware,
    iso_ms,
    json_response,
    stop_seq,
    zone_for,
)

__all__ = [
    "legacy_app", "open_database", "read_load", "create_load", "assign_load", "reassign_load",
    "cancel_load", "update_stop_eta", "pick_driver", "insert_assignment", "datetime_ticks",
    "ticks_to_iso",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS zones (
    zone_code        TEXT PRIMARY KEY COLLATE NOCASE,   -- CHAR(3), case-insensitive collation
    utc_offset_hours INTEGER NOT NULL,
    base_price       REAL NOT NULL                      -- MONEY
);
CREATE TABLE IF NOT EXISTS drivers (
    driver_id   TEXT PRIMARY KEY,
    zone_code   TEXT NOT NULL COLLATE NOCASE,
    driver_name TEXT NOT NULL,                          -- CHAR(20): stored blank-padded
    grid_x      INTEGER NOT NULL,
    grid_y      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS loads (
    load_id       TEXT PRIMARY KEY,
    zone_code     TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'O',            -- CHAR(1): O open, A assigned, C cancelled
    weight_kg     TEXT NOT NULL,                        -- DECIMAL(10,2)
    hazmat        INTEGER NOT NULL DEFAULT 0,           -- BIT
    price         REAL NOT NULL,                        -- MONEY, ROUND()ed on insert
    pickup_local  TEXT NOT NULL,                        -- DATETIME in the zone's local time
    notes         TEXT NOT NULL DEFAULT '',             -- VARCHAR(200) NOT NULL DEFAULT ''
    cancel_reason TEXT,
    depot         TEXT,
    origin_x      INTEGER NOT NULL,
    origin_y      INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
-- A heap: no primary key, rows come back in insertion order.
CREATE TABLE IF NOT EXISTS stops (
    load_id   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    address   TEXT NOT NULL,
    eta_ticks INTEGER                                   -- DATETIME as 1/300 s ticks (UTC)
);
CREATE INDEX IF NOT EXISTS ix_stops_load ON stops (load_id);
CREATE TABLE IF NOT EXISTS assignments (
    assignment_id   INTEGER PRIMARY KEY AUTOINCREMENT,  -- INT IDENTITY(1,1)
    load_id         TEXT NOT NULL,
    driver_id       TEXT NOT NULL,
    driver_name     TEXT NOT NULL,                      -- CHAR(20), copied from drivers
    distance_km     REAL NOT NULL,                      -- DECIMAL(9,1)
    requested_local TEXT NOT NULL,
    assigned_at     TEXT NOT NULL,
    active          INTEGER NOT NULL DEFAULT 1          -- BIT
);
CREATE INDEX IF NOT EXISTS ix_assignments_load ON assignments (load_id, active);
-- TRG_ASSIGN_DEPOT, 2014: heavy loads dispatched in the evening go to depot 2.
-- Nobody on the current team knows why; it has never been removed.
CREATE TRIGGER IF NOT EXISTS trg_assign_depot AFTER INSERT ON assignments
BEGIN
    UPDATE loads SET depot = CASE
        WHEN CAST(weight_kg AS REAL) > 20000
         AND CAST(strftime('%H', NEW.requested_local) AS INTEGER) >= 18 THEN 'DEPOT-2'
        ELSE 'DEPOT-1' END
    WHERE load_id = NEW.load_id;
END;
"""

# Nearest driver: SQL Server returned ties in clustered-index (insertion) order because the
# procedure never had a tie-break; SQLite's sorter promises nothing, so rowid pins that order.
_NEAREST = """
SELECT driver_id, driver_name, ABS(grid_x - :x) + ABS(grid_y - :y) AS cells
FROM drivers
WHERE zone_code = :zone AND driver_id <> :exclude
ORDER BY cells, rowid
LIMIT 1
"""
_SQL_EPOCH = datetime(1900, 1, 1, tzinfo=timezone.utc)


def open_database(db_path: str) -> sqlite3.Connection:
    """Open (and if new, create and seed) the legacy database at db_path."""
    db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
    db.row_factory = sqlite3.Row
    # Durability is not the point of the demo; throughput under a replay is.
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.executescript(_SCHEMA)
    with _transaction(db):
        if db.execute("SELECT COUNT(*) FROM zones").fetchone()[0] == 0:
            db.executemany(
                "INSERT INTO zones VALUES (UPPER(?), ?, ?)",
                [(z.code, z.utc_offset_hours, float(z.base_price)) for z in ZONES.values()],
            )
            db.executemany(
                "INSERT INTO drivers VALUES (?, UPPER(?), printf('%-20s', ?), ?, ?)",
                [(d.driver_id, d.zone, d.name, d.x, d.y) for d in LEGACY_ROSTER_ORDER],
            )
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def datetime_ticks(value: datetime) -> int:
    """A timestamp as SQL Server DATETIME stores it: 1/300 s ticks, rounded half up."""
    delta = as_utc(value) - _SQL_EPOCH
    ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    # Milliseconds become ticks of 1/300 s: .xx1 -> .xx0, .xx5 -> .xx7, .xx9 -> next .xx0.
    return (ms * 3 + 5) // 10


def ticks_to_iso(ticks: int) -> str:
    """DATETIME ticks back to ISO UTC with milliseconds (which now end in 0, 3 or 7)."""
    ms = (ticks * 10 + 1) // 3
    return iso_ms(_SQL_EPOCH + timedelta(milliseconds=ms))


def _now() -> str:
    return iso_ms(datetime.now(timezone.utc))


def _sql_time(value: datetime) -> str:
    # SQLite's date functions read 'YYYY-MM-DD HH:MM:SS.SSS' (UTC here).
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S")


def _load_row(db: sqlite3.Connection, load_id: str) -> sqlite3.Row:
    row = db.execute("SELECT * FROM loads WHERE load_id = ?", (load_id,)).fetchone()
    if row is None:
        raise DispatchError(404, f"load {load_id!r} not found")
    return row


def read_load(db: sqlite3.Connection, load_id: str) -> dict[str, Any]:
    """usp_GetLoad: the load state document, straight from the columns."""
    load = _load_row(db, load_id)
    # No ORDER BY, as in the original procedure: the heap hands back insertion order.
    stops = db.execute(
        "SELECT seq, address, eta_ticks FROM stops WHERE load_id = ? ORDER BY rowid", (load_id,)
    ).fetchall()
    assignments = db.execute(
        "SELECT assignment_id, driver_id, driver_name, distance_km, assigned_at FROM assignments"
        " WHERE load_id = ? AND active = 1 ORDER BY assignment_id",
        (load_id,),
    ).fetchall()
    return {
        "load_id": load["load_id"],
        "zone": load["zone_code"],
        "status": load["status"],
        # The monolith's JSON layer writes DECIMAL columns as strings.
        "weight_kg": load["weight_kg"],
        "hazmat": load["hazmat"],
        "price": load["price"],
        "pickup_at": load["pickup_local"],
        "notes": load["notes"],
        "cancel_reason": load["cancel_reason"],
        "depot": load["depot"],
        "created_at": load["created_at"],
        "updated_at": load["updated_at"],
        "stops": [
            {
                "seq": s["seq"],
                "address": s["address"],
                "eta": None if s["eta_ticks"] is None else ticks_to_iso(s["eta_ticks"]),
            }
            for s in stops
        ],
        "assignments": [dict(a) for a in assignments],
    }


def create_load(db: sqlite3.Connection, body: CreateLoad) -> dict[str, Any]:
    """usp_CreateLoad: one row in loads, the stops in the order they were sent."""
    zone = zone_for(body.zone)
    now = _now()
    with _transaction(db):
        try:
            db.execute(
                """
                INSERT INTO loads (load_id, zone_code, weight_kg, hazmat, price, pickup_local,
                                   notes, origin_x, origin_y, created_at, updated_at)
                SELECT :load_id, UPPER(:zone),
                       printf('%.2f', :weight),
                       :hazmat,
                       -- SQL Server ROUND(): half away from zero
                       ROUND(z.base_price + :weight * :rate, 2),
                       strftime('%Y-%m-%dT%H:%M:%S', :pickup, z.utc_offset_hours || ' hours'),
                       COALESCE(:notes, ''),
                       :x, :y, :now, :now
                FROM zones z WHERE z.zone_code = :zone
                """,
                {
                    "load_id": body.load_id,
                    "zone": zone.code,
                    "weight": body.weight_kg,
                    "hazmat": 1 if body.hazmat else 0,
                    "rate": float(PER_KG_RATE),
                    "pickup": _sql_time(body.pickup_at),
                    "notes": body.notes,
                    "x": body.origin.x,
                    "y": body.origin.y,
                    "now": now,
                },
            )
        except sqlite3.IntegrityError:
            raise DispatchError(409, f"load {body.load_id!r} already exists") from None
        db.executemany(
            "INSERT INTO stops (load_id, seq, address) VALUES (?, ?, ?)",
            [(body.load_id, s.seq, s.address) for s in body.stops],
        )
    return read_load(db, body.load_id)


def insert_assignment(
    db: sqlite3.Connection, load: sqlite3.Row, driver: sqlite3.Row, requested_at: datetime
) -> dict[str, Any]:
    """Insert an active assignment; the depot trigger fires; answer like usp_AssignLoad."""
    cur = db.execute(
        """
        INSERT INTO assignments (load_id, driver_id, driver_name, distance_km,
                                 requested_local, assigned_at)
        SELECT :load_id, :driver_id, :driver_name,
               ROUND(:cells * :km, 1),                       -- DECIMAL(9,1): exact
               strftime('%Y-%m-%dT%H:%M:%S', :requested, z.utc_offset_hours || ' hours'),
               :now
        FROM zones z WHERE z.zone_code = :zone
        """,
        {
            "load_id": load["load_id"],
            "driver_id": driver["driver_id"],
            "driver_name": driver["driver_name"],
            "cells": driver["cells"],
            "km": float(KM_PER_CELL),
            "requested": _sql_time(requested_at),
            "now": _now(),
            "zone": load["zone_code"],
        },
    )
    db.execute(
        "UPDATE loads SET status = 'A', updated_at = ? WHERE load_id = ?", (_now(), load["load_id"])
    )
    row = db.execute(
        "SELECT a.assignment_id, a.driver_id, a.driver_name, a.distance_km, l.depot, l.status"
        " FROM assignments a JOIN loads l ON l.load_id = a.load_id WHERE a.assignment_id = ?",
        (cur.lastrowid,),
    ).fetchone()
    return {"load_id": load["load_id"], **dict(row)}


def pick_driver(
    db: sqlite3.Connection, load: sqlite3.Row, driver_id: str | None = None, exclude: str = ""
) -> sqlite3.Row:
    """The named driver, or the nearest one in the load's zone (ties: roster insertion order)."""
    params = {"x": load["origin_x"], "y": load["origin_y"], "zone": load["zone_code"]}
    if driver_id is not None:
        driver = db.execute(
            "SELECT driver_id, driver_name, ABS(grid_x - :x) + ABS(grid_y - :y) AS cells"
            " FROM drivers WHERE zone_code = :zone AND driver_id = :driver_id",
            {**params, "driver_id": driver_id},
        ).fetchone()
        if driver is None:
            raise DispatchError(400, f"driver {driver_id!r} is not on the roster of this zone")
        return driver
    driver = db.execute(_NEAREST, {**params, "exclude": exclude}).fetchone()
    if driver is None:
        raise DispatchError(409, "no other driver available in this zone")
    return driver


def assign_load(db: sqlite3.Connection, load_id: str, body: AssignLoad) -> dict[str, Any]:
    """usp_AssignLoad: INSERT an assignment. It never checked for an existing one, so a
    retried request (same dispatch token) leaves two active assignments."""
    with _transaction(db):
        load = _load_row(db, load_id)
        if load["status"] == "C":
            raise DispatchError(409, f"load {load_id!r} is cancelled")
        driver = pick_driver(db, load, driver_id=body.driver_id)
        return insert_assignment(db, load, driver, body.requested_at)


def reassign_load(db: sqlite3.Connection, load_id: str, body: ReassignLoad) -> dict[str, Any]:
    """usp_ReassignLoad: end the active assignments, give the load to the next-nearest driver."""
    with _transaction(db):
        load = _load_row(db, load_id)
        if load["status"] == "C":
            raise DispatchError(409, f"load {load_id!r} is cancelled")
        current = db.execute(
            "SELECT driver_id FROM assignments WHERE load_id = ? AND active = 1"
            " ORDER BY assignment_id DESC LIMIT 1",
            (load_id,),
        ).fetchone()
        if current is None:
            raise DispatchError(409, f"load {load_id!r} has no active assignment")
        driver = pick_driver(db, load, exclude=current["driver_id"])
        db.execute("UPDATE assignments SET active = 0 WHERE load_id = ? AND active = 1", (load_id,))
        return insert_assignment(db, load, driver, body.requested_at)


def cancel_load(db: sqlite3.Connection, load_id: str, body: CancelLoad) -> dict[str, Any]:
    """usp_CancelLoad: @reason VARCHAR(200) = '' -- so a missing reason is stored as ''."""
    with _transaction(db):
        load = _load_row(db, load_id)
        if load["status"] == "C":
            raise DispatchError(409, f"load {load_id!r} is already cancelled")
        db.execute(
            "UPDATE loads SET status = 'C', cancel_reason = COALESCE(?, ''), updated_at = ?"
            " WHERE load_id = ?",
            (body.reason, _now(), load_id),
        )
        db.execute("UPDATE assignments SET active = 0 WHERE load_id = ? AND active = 1", (load_id,))
    return read_load(db, load_id)


def update_stop_eta(
    db: sqlite3.Connection, load_id: str, seq: int, body: UpdateStopEta
) -> dict[str, Any]:
    """usp_SetStopEta: the ETA lands in a DATETIME column, so it keeps 1/300 s precision."""
    with _transaction(db):
        _load_row(db, load_id)
        cur = db.execute(
            "UPDATE stops SET eta_ticks = ? WHERE load_id = ? AND seq = ?",
            (datetime_ticks(body.eta), load_id, seq),
        )
        if cur.rowcount == 0:
            raise DispatchError(404, f"load {load_id!r} has no stop {seq}")
        db.execute("UPDATE loads SET updated_at = ? WHERE load_id = ?", (_now(), load_id))
    return read_load(db, load_id)


def legacy_app(db_path: str | None = None) -> web.Application:
    """The legacy dispatch service as an aiohttp application; a temp SQLite file if no path."""
    owned = db_path is None
    if db_path is None:
        fd, db_path = tempfile.mkstemp(prefix="shadow-legacy-", suffix=".db")
        os.close(fd)
    db = open_database(db_path)
    app = web.Application(middlewares=[error_middleware])

    async def health(request: web.Request) -> web.Response:
        return json_response({"status": "ok", "target": "legacy"})

    async def post_load(request: web.Request) -> web.Response:
        return json_response(create_load(db, decode_body(await request.read(), CreateLoad)), 201)

    async def get_load(request: web.Request) -> web.Response:
        return json_response(read_load(db, request.match_info["load_id"]))

    def command(procedure: Any, body_type: type) -> Any:
        async def handler(request: web.Request) -> web.Response:
            body = decode_body(await request.read(), body_type)
            return json_response(procedure(db, request.match_info["load_id"], body))

        return handler

    async def put_eta(request: web.Request) -> web.Response:
        seq = stop_seq(request)
        body = decode_body(await request.read(), UpdateStopEta)
        return json_response(update_stop_eta(db, request.match_info["load_id"], seq, body))

    async def close(_: web.Application) -> None:
        db.close()
        if owned:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(db_path + suffix)

    app.router.add_get("/health", health)
    app.router.add_post("/loads", post_load)
    app.router.add_get("/loads/{load_id}", get_load)
    app.router.add_post("/loads/{load_id}/assign", command(assign_load, AssignLoad))
    app.router.add_post("/loads/{load_id}/reassign", command(reassign_load, ReassignLoad))
    app.router.add_post("/loads/{load_id}/cancel", command(cancel_load, CancelLoad))
    app.router.add_put("/loads/{load_id}/stops/{seq}/eta", put_eta)
    app.on_cleanup.append(close)
    return app
