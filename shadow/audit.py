"""The audit log: who did what, when, to which quirk, route or zone — append-only and hash-chained.

It lives in the catalogue database. Each entry carries the hash of the one
before it, so editing or deleting any entry breaks every hash after it, which
`verify` finds. Verdicts (triage), and later flips, gates and guard decisions,
append here. This module sits low, beside the model: it imports nothing of
rules, cutover or the front ends.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["AuditEntry", "append", "entries", "verify", "audit_log", "GENESIS"]

GENESIS = "0" * 64
_metadata = sa.MetaData()
# Created by the catalogue's Alembic revision 0002.
audit_log = sa.Table(
    "audit_log",
    _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),      # JSON
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_log_subject", "subject"),
)


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the log."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"seq": self.seq, "at": self.at.isoformat(), "actor": self.actor, "action": self.action,
                "subject": self.subject, "detail": self.detail, "prev_hash": self.prev_hash, "hash": self.hash}


def _digest(prev_hash: str, at: datetime, actor: str, action: str, subject: str, detail: str) -> str:
    material = "\x1f".join([prev_hash, at.strftime("%Y-%m-%dT%H:%M:%S.%f"), actor, action, subject, detail])
    return hashlib.sha256(material.encode()).hexdigest()


def append(engine: Engine, *, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> AuditEntry:
    """Add an entry at the end of the chain, whatever other processes append at the same time.

    The insert only happens if the tail it chains to is still the tail (one INSERT … SELECT …
    WHERE, atomic in the database); when another writer got there first it is tried again.
    Postgres also takes a table lock, because under READ COMMITTED two such inserts could
    both see the old tail.
    """
    text = orjson.dumps(detail or {}, option=orjson.OPT_SORT_KEYS).decode()
    tail_hash = sa.select(audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1).scalar_subquery()
    for attempt in range(200):
        at = datetime.now(timezone.utc).replace(tzinfo=None)
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
                prev_hash = conn.execute(sa.select(tail_hash)).scalar() or GENESIS
                digest = _digest(prev_hash, at, actor, action, subject, text)
                values = {"at": at, "actor": actor, "action": action, "subject": subject, "detail": text,
                          "prev_hash": prev_hash, "hash": digest}
                chosen = sa.select(*(sa.literal(v, type_=audit_log.c[k].type).label(k) for k, v in values.items()))
                chosen = chosen.where(sa.func.coalesce(tail_hash, GENESIS) == prev_hash)
                seq = conn.execute(audit_log.insert().from_select(list(values), chosen)
                                   .returning(audit_log.c.seq)).scalar()
                if seq is not None:
                    return AuditEntry(seq, at.replace(tzinfo=timezone.utc), actor, action, subject, detail or {},
                                      prev_hash, digest)
        except sa.exc.OperationalError as exc:  # SQLite: another writer holds the lock or moved the snapshot
            if "locked" not in str(exc.orig).lower() and "busy" not in str(exc.orig).lower():
                raise
        time.sleep(min(0.001 * (attempt + 1), 0.05))
    raise RuntimeError("audit log: could not append after 200 attempts (the catalogue is too busy)")


def entries(engine: Engine, *, subject: str | None = None, action: str | None = None,
            limit: int | None = None) -> list[AuditEntry]:
    """Entries oldest first, optionally for one subject (e.g. 'quirk:2946f7e84c51') or action."""
    query = sa.select(audit_log).order_by(audit_log.c.seq)
    if subject:
        query = query.where(audit_log.c.subject == subject)
    if action:
        query = query.where(audit_log.c.action == action)
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [AuditEntry(r.seq, r.at.replace(tzinfo=timezone.utc), r.actor, r.action, r.subject,
                           orjson.loads(r.detail), r.prev_hash, r.hash) for r in conn.execute(query)]


def verify(engine: Engine) -> tuple[bool, int | None, int]:
    """Walk the chain: (intact, seq of the first entry that does not hold, entries checked)."""
    expected_prev = GENESIS
    checked = 0
    with engine.connect() as conn:
        for row in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)):
            checked += 1
            digest = _digest(row.prev_hash, row.at, row.actor, row.action, row.subject, row.detail)
            if row.prev_hash != expected_prev or digest != row.hash:
                return False, row.seq, checked
            expected_prev = row.hash
    return True, None, checked
