"""The proxy registry: register, heartbeat the route-table version, silent and stopped proxies; the schema."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cutover import registry
from rules.catalogue import Catalogue
from rules.schema import metadata, proxies
from shadow.audit import _metadata as audit_metadata


def test_a_proxy_registers_beats_and_stops(catalogue: Catalogue) -> None:
    engine = catalogue.engine
    registry.register(engine, "p1", "127.0.0.1:8080", "0-aaaa")
    registry.register(engine, "p2", "127.0.0.1:8081", "0-aaaa")
    registry.heartbeat(engine, "p1", "3-bbbb", {"chi": {"state": "watching"}})
    found = {p.instance: p for p in registry.registered(engine)}
    assert found["p1"].version == "3-bbbb" and found["p1"].state == "live" and found["p1"].guard["chi"]
    assert found["p2"].version == "0-aaaa"
    with engine.begin() as conn:  # p2 went quiet ten seconds ago
        last = conn.execute(sa.select(proxies.c.heartbeat_at).where(proxies.c.instance == "p2")).scalar_one()
        conn.execute(proxies.update().where(proxies.c.instance == "p2").values(heartbeat_at=last - timedelta(seconds=10)))
    assert {p.instance: p.state for p in registry.registered(engine)} == {"p1": "live", "p2": "silent"}
    registry.stopped(engine, "p1")
    assert [p.instance for p in registry.registered(engine)] == ["p2"]
    assert {p.instance: p.state for p in registry.registered(engine, include_stopped=True)} == {
        "p1": "stopped", "p2": "silent"}
    registry.register(engine, "p1", "127.0.0.1:8080", "3-bbbb")  # restarted with the same id: live again
    assert {p.instance: p.state for p in registry.registered(engine)}["p1"] == "live"


def test_notify_is_only_pushed_on_postgres(catalogue: Catalogue) -> None:
    assert registry.notify_routing(catalogue.engine, "1-abc") is False


def test_instance_ids_are_unique() -> None:
    assert len({registry.new_instance_id() for _ in range(50)}) == 50


def test_the_migrations_build_exactly_the_schema_the_code_declares(catalogue: Catalogue) -> None:
    declared = sa.MetaData()
    for table in (*metadata.tables.values(), *audit_metadata.tables.values()):
        table.to_metadata(declared)
    with catalogue.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), declared)
    assert differences == []
    with catalogue.engine.connect() as conn:
        assert "alembic_version" in sa.inspect(conn).get_table_names()
