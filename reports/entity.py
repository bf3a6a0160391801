"""The entity audit: every command that touched one entity (found by any natural key), in order.

"Who got what, when, why" for load L-123: both outcomes, the differences and
the quirks they belong to. Index lookups only (pair_keys by name and value,
then each pair by its token), so it stays fast on a catalogue of millions.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa

from rules.catalogue import Catalogue
from rules.schema import differences, pair_keys, pair_results, pairs, quirks
from rules.transitions import DESCRIPTIONS
from shadow.errors import InputError
from shadow.model import Pair, from_json

__all__ = ["EntityPair", "EntityDifference", "entity_history", "parse_key"]


def parse_key(text: str) -> tuple[str, str]:
    """`load_id=L-123` as (name, value)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value:
        raise InputError(f"--key {text!r} is not NAME=VALUE", hint="e.g. --key load_id=L-123 (any natural key)")
    return name.strip(), value


@dataclass(frozen=True)
class EntityDifference:
    """One difference of the pair, with the quirk it belongs to."""

    path: str
    legacy: Any
    new: Any
    quirk: str
    verdict: str | None
    description: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"path": self.path, "legacy": self.legacy, "new": self.new, "quirk": self.quirk,
                "verdict": self.verdict, "description": self.description}


@dataclass(frozen=True)
class EntityPair:
    """One command that touched the entity, with both outcomes (when the pair was kept)."""

    token: str
    command: str
    zone: str | None
    received_at: datetime
    matched: bool
    primary: str
    legacy_status: str
    new_status: str
    legacy_latency_ms: float
    new_latency_ms: float
    keys: dict[str, str] = field(default_factory=dict)
    payload: Any = None
    legacy: dict[str, Any] | None = None   # {"http_status", "response", "state"} as stored (redacted)
    new: dict[str, Any] | None = None
    differences: list[EntityDifference] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"token": self.token, "command": self.command, "zone": self.zone,
                "received_at": self.received_at.isoformat(), "matched": self.matched, "primary": self.primary,
                "keys": self.keys, "payload": self.payload,
                "legacy": {"status": self.legacy_status, "latency_ms": self.legacy_latency_ms, **(self.legacy or {})},
                "new": {"status": self.new_status, "latency_ms": self.new_latency_ms, **(self.new or {})},
                "differences": [d.to_dict() for d in self.differences]}


def _outcome(outcome: Any) -> dict[str, Any]:
    return {"http_status": outcome.http_status, "response": outcome.response, "state": outcome.state,
            "error": outcome.error}


def entity_history(catalogue: Catalogue, name: str, value: str, *, limit: int = 1000) -> list[EntityPair]:
    """Every stored pair whose command had natural key `name` = `value`, oldest first."""
    with catalogue.engine.connect() as conn:
        tokens = [t for (t,) in conn.execute(sa.select(pair_keys.c.token).where(
            pair_keys.c.name == name, pair_keys.c.value == value))]
        if not tokens:
            return []
        rows = conn.execute(sa.select(pair_results).where(pair_results.c.token.in_(tokens))
                            .order_by(pair_results.c.received_at, pair_results.c.token).limit(limit)).mappings().all()
        wanted = [r["token"] for r in rows]
        found: dict[str, list[EntityDifference]] = {}
        for token, path, legacy, new, quirk, verdict, transition in conn.execute(
                sa.select(differences.c.token, differences.c.path, differences.c.legacy_value, differences.c.new_value,
                          differences.c.quirk, quirks.c.verdict, quirks.c.transition)
                .outerjoin(quirks, quirks.c.id == differences.c.quirk)
                .where(differences.c.token.in_(wanted)).order_by(differences.c.id)):
            found.setdefault(token, []).append(EntityDifference(
                path, _load(legacy), _load(new), quirk, verdict, DESCRIPTIONS.get(transition, transition or "")))
        bodies = dict(conn.execute(sa.select(pairs.c.token, pairs.c.body).where(pairs.c.token.in_(wanted))).all())
        keys: dict[str, dict[str, str]] = {}
        for token, key, key_value in conn.execute(sa.select(pair_keys.c.token, pair_keys.c.name, pair_keys.c.value)
                                                  .where(pair_keys.c.token.in_(wanted))):
            keys.setdefault(token, {})[key] = key_value
    out = []
    for r in rows:
        pair = from_json(zlib.decompress(bodies[r["token"]]), Pair) if r["token"] in bodies else None
        out.append(EntityPair(
            token=r["token"], command=r["command"], zone=r["zone"],
            received_at=r["received_at"].replace(tzinfo=timezone.utc), matched=r["matched"],
            primary=r["primary_target"], legacy_status=r["legacy_status"], new_status=r["new_status"],
            legacy_latency_ms=r["legacy_latency_ms"], new_latency_ms=r["new_latency_ms"], keys=keys.get(r["token"], {}),
            payload=pair.command.payload if pair else None, legacy=_outcome(pair.legacy) if pair else None,
            new=_outcome(pair.new) if pair else None, differences=found.get(r["token"], [])))
    return out


def _load(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)
