"""Proxy registry: every proxy registers and heartbeats in the store, so a flip knows whom to wait for.

A proxy whose heartbeat is older than `STALE_AFTER` seconds is shown as such and
not waited for; one that stopped cleanly says so. On Postgres a flip is also
pushed (NOTIFY on `CHANNEL`), so proxies reload at once rather than at their
next look at the config file.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rules.schema import proxies

__all__ = ["ProxyRecord", "register", "heartbeat", "stopped", "registered", "new_instance_id", "notify_routing",
           "CHANNEL", "STALE_AFTER"]

CHANNEL = "shadow_routing"
STALE_AFTER = 3.0  # seconds without a heartbeat (proxies beat every 0.5 s)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_instance_id() -> str:
    """host-pid-random: unique per proxy process, readable in `cutover status`."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class ProxyRecord:
    """One registered proxy as the store last heard of it."""

    instance: str
    address: str
    version: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    guard: dict[str, Any]
    age_s: float

    @property
    def state(self) -> str:
        """live, silent (no heartbeat for STALE_AFTER seconds) or stopped."""
        if self.stopped_at is not None:
            return "stopped"
        return "live" if self.age_s <= STALE_AFTER else "silent"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"instance": self.instance, "address": self.address, "version": self.version, "state": self.state,
                "heartbeat_age_s": round(self.age_s, 2), "started_at": self.started_at.isoformat(),
                "guard": self.guard}


def _upsert(engine: Engine) -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(proxies)


def register(engine: Engine, instance: str, address: str, version: str) -> None:
    """Announce a proxy (again, after a restart with the same id)."""
    now = _now()
    stmt = _upsert(engine)
    with engine.begin() as conn:
        conn.execute(stmt.on_conflict_do_update(index_elements=["instance"], set_={
            "address": stmt.excluded.address, "version": stmt.excluded.version,
            "started_at": stmt.excluded.started_at, "heartbeat_at": stmt.excluded.heartbeat_at, "stopped_at": None}),
            {"instance": instance, "address": address, "version": version, "started_at": now, "heartbeat_at": now,
             "stopped_at": None, "guard": "{}"})


def heartbeat(engine: Engine, instance: str, version: str, guard: dict[str, Any] | None = None) -> None:
    """The proxy is alive and runs this route-table version."""
    values: dict[str, Any] = {"heartbeat_at": _now(), "version": version}
    if guard is not None:
        values["guard"] = orjson.dumps(guard).decode()
    with engine.begin() as conn:
        conn.execute(proxies.update().where(proxies.c.instance == instance).values(**values))


def stopped(engine: Engine, instance: str) -> None:
    """The proxy shut down cleanly: nobody needs to wait for it."""
    with engine.begin() as conn:
        conn.execute(proxies.update().where(proxies.c.instance == instance).values(stopped_at=_now()))


def registered(engine: Engine, *, include_stopped: bool = False) -> list[ProxyRecord]:
    """Every registered proxy, newest first (stopped ones only when asked)."""
    now = _now()
    query = sa.select(proxies).order_by(proxies.c.started_at.desc())
    if not include_stopped:
        query = query.where(proxies.c.stopped_at.is_(None))
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [ProxyRecord(r["instance"], r["address"], r["version"], r["started_at"], r["heartbeat_at"],
                        r["stopped_at"], orjson.loads(r["guard"] or "{}"), (now - r["heartbeat_at"]).total_seconds())
            for r in rows]


def notify_routing(engine: Engine, version: str) -> bool:
    """Push a new route-table version to every listening proxy (Postgres only); False when not pushed."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_notify(:channel, :version)"), {"channel": CHANNEL, "version": version})
    return True
