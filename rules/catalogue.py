"""The quirk catalogue: pair results, their differences, fingerprints and quirks with roll-ups.

Any SQLAlchemy URL works (SQLite file by default, Postgres at scale). Storing
is idempotent on the dispatch token: a pair compared again replaces its old
result, and every roll-up moves by the difference, so nothing counts twice.
Verdicts live in rule files; `apply_rules` copies them into the catalogue.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rules.compare import PairResult
from rules.paths import PathGlob
from rules.rulefile import RuleSet
from rules.rollups import Contribution, json_text, move_rollups
from rules.schema import (differences, fingerprints, pair_hours, pair_keys, pair_results, pairs, quirk_hours, quirk_zones,
                          quirks)
from rules.transitions import DESCRIPTIONS
from shadow.errors import StoreError
from shadow.model import Pair, from_json
from shadow.secrets import mask_url

__all__ = ["Catalogue", "Quirk", "Example", "IngestStats", "open_catalogue", "VERDICTS"]

VERDICTS = ("open", "reproduce", "retire", "noise")
_MIGRATIONS = Path(__file__).parent / "migrations"
# What a stored pair contributed to the roll-ups, in Contribution's argument order (after the token).
_PAIR_COLUMNS = (pair_results.c.token, pair_results.c.received_at, pair_results.c.command, pair_results.c.zone,
                 pair_results.c.matched, pair_results.c.legacy_status, pair_results.c.new_status,
                 pair_results.c.legacy_latency_ms, pair_results.c.new_latency_ms)
_SORTS = {"count": (quirks.c.differences.desc(),), "first_seen": (quirks.c.first_seen,),
          "last_seen": (quirks.c.last_seen.desc(),), "newest": (quirks.c.first_seen.desc(),)}


@dataclass(frozen=True)
class Example:
    """One occurrence of a quirk: which pair, where, and both values."""

    token: str
    path: str
    legacy: Any
    new: Any
    command: str | None = None


@dataclass(frozen=True)
class Quirk:
    """Every difference of one field behaving one way, across commands and documents."""

    id: str
    field: str
    change: str
    transition: str
    differences: int
    pairs: int
    first_seen: datetime | None
    last_seen: datetime | None
    verdict: str
    verdict_source: str | None
    owner: str | None
    note: str | None
    ticket: str | None
    example: Example | None
    commands: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    zones: dict[str, int] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)

    @property
    def description(self) -> str:
        """The quirk in plain words."""
        return f"{self.field}: {DESCRIPTIONS.get(self.transition, self.transition)}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view, for --json output."""
        def example(e: Example | None) -> dict[str, Any] | None:
            if e is None:
                return None
            return {"token": e.token, "command": e.command, "path": e.path, "legacy": e.legacy, "new": e.new}

        return {
            "id": self.id, "field": self.field, "change": self.change, "transition": self.transition,
            "description": self.description, "differences": self.differences, "pairs": self.pairs,
            "first_seen": _iso(self.first_seen), "last_seen": _iso(self.last_seen),
            "verdict": self.verdict, "verdict_source": self.verdict_source, "owner": self.owner,
            "note": self.note, "ticket": self.ticket, "commands": self.commands, "paths": self.paths,
            "zones": self.zones, "example": example(self.example), "examples": [example(e) for e in self.examples],
        }


@dataclass
class IngestStats:
    """What one `store` call did."""

    pairs: int = 0
    replaced: int = 0
    matched: int = 0
    differences: int = 0

    def add(self, other: "IngestStats") -> None:
        """Accumulate another call's figures."""
        self.pairs += other.pairs
        self.replaced += other.replaced
        self.matched += other.matched
        self.differences += other.differences


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _utc(value: datetime | None) -> datetime | None:
    """Stored times are naive UTC; hand them out aware."""
    return None if value is None else value.replace(tzinfo=timezone.utc)


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _unjson(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _matches_word(word: str) -> sa.ColumnElement[bool]:
    """One word of a free-text search: somewhere in a quirk's text columns, paths or plain words."""
    pattern = _like(word)
    columns = (quirks.c.id, quirks.c.field, quirks.c.transition, quirks.c.owner, quirks.c.note, quirks.c.ticket)
    found = [sa.func.lower(column).like(pattern, escape="\\") for column in columns]
    found.append(quirks.c.id.in_(sa.select(fingerprints.c.quirk).where(
        sa.func.lower(fingerprints.c.pattern).like(pattern, escape="\\"))))
    described = [name for name, words in DESCRIPTIONS.items() if word in words.lower()]
    if described:
        found.append(quirks.c.transition.in_(described))
    return sa.or_(*found)


class Catalogue:
    """A catalogue store opened on one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = mask_url(engine.url.render_as_string(hide_password=False))

    # -- writing -----------------------------------------------------------------

    def store(self, results: Iterable[PairResult], *, batch_size: int = 500) -> IngestStats:
        """Store pair results (upsert on dispatch token) and move every roll-up."""
        stats = IngestStats()
        batch: dict[str, PairResult] = {}
        for result in results:
            batch[result.token] = result  # a token twice in one batch: the last one wins
            if len(batch) >= batch_size:
                self._store_batch(list(batch.values()), stats)
                batch.clear()
        if batch:
            self._store_batch(list(batch.values()), stats)
        return stats

    def _store_batch(self, batch: list[PairResult], stats: IngestStats) -> None:
        tokens = [r.token for r in batch]
        with self.engine.begin() as conn:
            before = conn.execute(sa.select(*_PAIR_COLUMNS).where(pair_results.c.token.in_(tokens))).all()
            old: list[Contribution] = []
            if before:
                occurrences: dict[str, list[tuple[str, str]]] = {}
                for token, fingerprint, quirk in conn.execute(
                        sa.select(differences.c.token, differences.c.fingerprint, differences.c.quirk)
                        .where(differences.c.token.in_(tokens))):
                    occurrences.setdefault(token, []).append((fingerprint, quirk))
                old = [Contribution(*row[1:], occurrences.get(row[0], ())) for row in before]
                conn.execute(differences.delete().where(differences.c.token.in_(tokens)))
                conn.execute(pair_keys.delete().where(pair_keys.c.token.in_(tokens)))
            stats.replaced += len(before)
            conn.execute(self._upsert(pair_results, "token"), [self._pair_row(r) for r in batch])
            kept = [{"token": r.token, "body": r.stored_pair} for r in batch if r.stored_pair is not None]
            if kept:
                conn.execute(self._upsert(pairs, "token"), kept)
            keys = [{"token": r.token, "name": name[:128], "value": str(value)[:256]}
                    for r in batch for name, value in r.keys.items()]
            if keys:
                conn.execute(pair_keys.insert(), keys)
            rows = [
                {"token": r.token, "fingerprint": d.fingerprint, "quirk": d.quirk, "path": d.path,
                 "legacy_value": json_text(d.legacy), "new_value": json_text(d.new)}
                for r in batch for d in r.differences
            ]
            if rows:
                conn.execute(differences.insert(), rows)
            move_rollups(conn, self._insert, [(r, _naive_utc(r.received_at)) for r in batch], old)
        stats.pairs += len(batch)
        stats.matched += sum(1 for r in batch if r.matched)
        stats.differences += sum(len(r.differences) for r in batch)

    def _insert(self, table: sa.Table) -> Any:
        name = self.engine.dialect.name
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise StoreError(f"catalogue store {self.url}: dialect {name!r} is not supported",
                             hint="use a sqlite:/// or postgresql+psycopg:// URL for the catalogue")
        return insert(table)

    def _upsert(self, table: sa.Table, key: str) -> Any:
        stmt = self._insert(table)
        columns = {c.name: stmt.excluded[c.name] for c in table.columns if c.name != key}
        return stmt.on_conflict_do_update(index_elements=[key], set_=columns)

    @staticmethod
    def _pair_row(r: PairResult) -> dict[str, Any]:
        return {
            "token": r.token, "command": r.command, "zone": r.zone, "entity": r.entity,
            "received_at": _naive_utc(r.received_at), "compared_at": _naive_utc(r.compared_at),
            "matched": r.matched, "difference_count": len(r.differences),
            "legacy_status": r.legacy_status, "new_status": r.new_status,
            "legacy_latency_ms": r.legacy_latency_ms, "new_latency_ms": r.new_latency_ms,
            "primary_target": r.primary,
        }

    def apply_rules(self, rules: RuleSet) -> dict[str, int]:
        """Copy verdicts from rule files into the catalogue; declared noise paths make their quirks noise.

        A quirk with no verdict in any rule file is `open`, or `noise` when one of
        its paths is a declared noise path. Returns how many quirks got each verdict.
        """
        decisions = rules.decisions
        noise = [(PathGlob.compile(n.path), n, path) for path, n in
                 ((rule.path, n) for rule in rules.files for n in rule.noise)]
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        with self.engine.begin() as conn:
            current = {row.id: row for row in conn.execute(sa.select(
                quirks.c.id, quirks.c.verdict, quirks.c.verdict_source, quirks.c.owner, quirks.c.note,
                quirks.c.ticket))}
            patterns: dict[str, list[str]] = {}
            for quirk, pattern in conn.execute(sa.select(fingerprints.c.quirk, fingerprints.c.pattern)):
                patterns.setdefault(quirk, []).append(pattern)
            updates = []
            for quirk_id, row in current.items():
                wanted: dict[str, Any] = {"verdict": "open", "verdict_source": None, "owner": None, "note": None,
                                          "ticket": None}
                if quirk_id in decisions:
                    decision, path = decisions[quirk_id]
                    wanted = {"verdict": decision.verdict, "verdict_source": path.name if path else "rules",
                              "owner": decision.owner, "note": decision.note, "ticket": decision.ticket}
                else:
                    for glob, declared, path in noise:
                        if any(glob.matches(p) for p in patterns.get(quirk_id, ())):
                            wanted = {"verdict": "noise", "verdict_source": path.name if path else declared.source,
                                      "owner": declared.source, "note": declared.reason or None, "ticket": None}
                            break
                if any(getattr(row, k) != v for k, v in wanted.items()):
                    updates.append({"k": quirk_id, **wanted, "updated_at": now})
            if updates:
                conn.execute(quirks.update().where(quirks.c.id == sa.bindparam("k")).values(
                    verdict=sa.bindparam("verdict"), verdict_source=sa.bindparam("verdict_source"),
                    owner=sa.bindparam("owner"), note=sa.bindparam("note"), ticket=sa.bindparam("ticket"),
                    updated_at=sa.bindparam("updated_at")), updates)
            return dict(Counter(r.verdict for r in conn.execute(
                sa.select(quirks.c.verdict).where(quirks.c.differences > 0))))

    # -- reading -----------------------------------------------------------------

    @staticmethod
    def _filtered(query: Any, verdict: str | None, command: str | None, zone: str | None,
                  entity: str | None, ids: list[str] | None = None, owner: str | None = None,
                  text: str | None = None) -> Any:
        query = query.where(quirks.c.differences > 0)
        if ids is not None:
            query = query.where(quirks.c.id.in_(ids))
        if verdict:
            query = query.where(quirks.c.verdict == verdict)
        if owner:
            query = query.where(quirks.c.owner == owner)
        if command:
            query = query.where(quirks.c.id.in_(
                sa.select(fingerprints.c.quirk).where(fingerprints.c.command == command, fingerprints.c.differences > 0)))
        if zone:
            query = query.where(quirks.c.id.in_(
                sa.select(quirk_zones.c.quirk).where(quirk_zones.c.zone == zone, quirk_zones.c.differences > 0)))
        if entity:
            query = query.where(quirks.c.id.in_(
                sa.select(differences.c.quirk).where(differences.c.token.in_(
                    sa.select(pair_results.c.token).where(pair_results.c.entity == entity)))))
        for word in (text or "").lower().split()[:8]:
            query = query.where(_matches_word(word))
        return query

    def count_quirks(self, *, verdict: str | None = None, command: str | None = None, zone: str | None = None,
                     entity: str | None = None, owner: str | None = None, text: str | None = None) -> int:
        """How many quirks `quirks()` would list without a limit."""
        query = self._filtered(sa.select(sa.func.count()).select_from(quirks), verdict, command, zone, entity,
                               owner=owner, text=text)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def quirks(self, *, verdict: str | None = None, command: str | None = None, zone: str | None = None,
               entity: str | None = None, limit: int | None = None, offset: int = 0,
               sort: str = "count", ids: list[str] | None = None, owner: str | None = None,
               text: str | None = None) -> list[Quirk]:
        """Quirks with at least one difference (most frequent first), with their commands and zones.

        `owner` is who decided the verdict; `text` holds words that must each appear in the quirk's id, field,
        paths, transition class or its plain words, owner, note or ticket (case-insensitive).
        """
        query = self._filtered(sa.select(quirks), verdict, command, zone, entity, ids, owner=owner, text=text)
        query = query.order_by(*_SORTS.get(sort, _SORTS["count"]), quirks.c.id).offset(offset)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            ids = [row["id"] for row in rows]
            where = self._where_fingerprints(conn, ids)
            zones = self._zones(conn, ids)
        return [self._quirk(row, where.get(row["id"], ([], [])), zones.get(row["id"], {})) for row in rows]

    def quirk(self, quirk_id: str, *, examples: int = 5) -> Quirk:
        """One quirk by id (a unique prefix will do), with example occurrences."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(quirks).where(quirks.c.id.like(f"{quirk_id}%")).limit(2)).mappings().all()
            if not rows:
                raise StoreError(f"no quirk with id {quirk_id!r} in {self.url}", hint="`shadow quirks list` shows the ids")
            if len(rows) > 1:
                raise StoreError(f"quirk id {quirk_id!r} is ambiguous in {self.url}", hint="give more characters of the id")
            row = rows[0]
            found = conn.execute(
                sa.select(differences.c.token, differences.c.path, differences.c.legacy_value,
                          differences.c.new_value, pair_results.c.command)
                .join(pair_results, pair_results.c.token == differences.c.token)
                .where(differences.c.quirk == row["id"]).order_by(differences.c.id).limit(examples)
            ).all()
            where = self._where_fingerprints(conn, [row["id"]])
            zones = self._zones(conn, [row["id"]])
        return self._quirk(row, where.get(row["id"], ([], [])), zones.get(row["id"], {}),
                           [Example(t, p, _unjson(a), _unjson(b), c) for t, p, a, b, c in found])

    @staticmethod
    def _where_fingerprints(conn: Connection, ids: list[str]) -> dict[str, tuple[list[str], list[str]]]:
        out: dict[str, tuple[list[str], list[str]]] = {}
        if not ids:
            return out
        for quirk, command, pattern in conn.execute(
                sa.select(fingerprints.c.quirk, fingerprints.c.command, fingerprints.c.pattern)
                .where(fingerprints.c.quirk.in_(ids), fingerprints.c.differences > 0)):
            commands, paths = out.setdefault(quirk, ([], []))
            if command not in commands:
                commands.append(command)
            if pattern not in paths:
                paths.append(pattern)
        return {k: (sorted(c), sorted(p)) for k, (c, p) in out.items()}

    @staticmethod
    def _zones(conn: Connection, ids: list[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        if ids:
            for quirk, zone, count in conn.execute(
                    sa.select(quirk_zones.c.quirk, quirk_zones.c.zone, quirk_zones.c.differences)
                    .where(quirk_zones.c.quirk.in_(ids), quirk_zones.c.differences > 0)
                    .order_by(quirk_zones.c.zone)):
                out.setdefault(quirk, {})[zone] = count
        return out

    @staticmethod
    def _quirk(row: Any, where: tuple[list[str], list[str]], zones: dict[str, int],
               examples: list[Example] | None = None) -> Quirk:
        example = None
        if row["example_token"] is not None:
            example = Example(row["example_token"], row["example_path"], _unjson(row["example_legacy"]),
                              _unjson(row["example_new"]), row["example_command"])
        return Quirk(
            id=row["id"], field=row["field"], change=row["change"], transition=row["transition"],
            differences=row["differences"], pairs=row["pairs"], first_seen=_utc(row["first_seen"]),
            last_seen=_utc(row["last_seen"]), verdict=row["verdict"], verdict_source=row["verdict_source"],
            owner=row["owner"], note=row["note"], ticket=row["ticket"], example=example,
            commands=where[0], paths=where[1], zones=zones, examples=examples or [],
        )

    def difference_counts(self) -> dict[str, int]:
        """Quirk id → how many stored differences it holds."""
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(quirks.c.id, quirks.c.differences).where(quirks.c.differences > 0)).all())

    def facets(self) -> dict[str, list[str]]:
        """What the quirks can be filtered by: command kinds, zones and owners that have differences."""
        with self.engine.connect() as conn:
            commands = conn.execute(sa.select(fingerprints.c.command).where(fingerprints.c.differences > 0)
                                    .distinct().order_by(fingerprints.c.command)).scalars().all()
            zones = conn.execute(sa.select(quirk_zones.c.zone).where(quirk_zones.c.differences > 0)
                                 .distinct().order_by(quirk_zones.c.zone)).scalars().all()
            owners = conn.execute(sa.select(quirks.c.owner).where(quirks.c.differences > 0, quirks.c.owner.is_not(None))
                                  .distinct().order_by(quirks.c.owner)).scalars().all()
        return {"commands": list(commands), "zones": [z for z in zones if z], "owners": list(owners)}

    def hour_span(self) -> tuple[datetime, datetime] | None:
        """The first and last hour with stored pairs (UTC), or None for an empty catalogue."""
        with self.engine.connect() as conn:
            first, last = conn.execute(sa.select(sa.func.min(pair_hours.c.hour), sa.func.max(pair_hours.c.hour))).one()
        if first is None or last is None:
            return None
        return _utc(first), _utc(last)  # type: ignore[return-value]

    def timelines(self, ids: list[str], *, by: str = "hour") -> dict[str, list[tuple[datetime, int]]]:
        """Per quirk, its differences per hour (or per day, `by="day"`), UTC, from the hourly roll-up; buckets
        without any are left out."""
        out: dict[str, list[tuple[datetime, int]]] = {}
        if not ids:
            return out
        t = quirk_hours
        if by == "day":
            # Days are cut in SQL: a page of frequent quirks has tens of thousands of hourly rows.
            bucket: Any = sa.func.date_trunc("day", t.c.hour) if self.engine.dialect.name == "postgresql" \
                else sa.func.substr(t.c.hour, 1, 10)
        else:
            bucket = t.c.hour
        with self.engine.connect() as conn:
            for quirk, when, n in conn.execute(sa.select(t.c.quirk, bucket, sa.func.sum(t.c.differences))
                                               .where(t.c.quirk.in_(ids)).group_by(t.c.quirk, bucket)):
                if n:
                    if isinstance(when, str):
                        when = datetime.fromisoformat(when)
                    out.setdefault(quirk, []).append((_utc(when), int(n)))  # type: ignore[arg-type]
        return out

    def pairs_by_token(self, tokens: list[str]) -> dict[str, tuple[dict[str, str], Pair | None]]:
        """Per dispatch token: the pair's natural keys, and the pair itself when it was kept (redacted as stored)."""
        out: dict[str, tuple[dict[str, str], Pair | None]] = {t: ({}, None) for t in tokens}
        if not tokens:
            return out
        with self.engine.connect() as conn:
            for token, name, value in conn.execute(sa.select(pair_keys.c.token, pair_keys.c.name, pair_keys.c.value)
                                                   .where(pair_keys.c.token.in_(tokens))):
                out[token][0][name] = value
            for token, body in conn.execute(sa.select(pairs.c.token, pairs.c.body).where(pairs.c.token.in_(tokens))):
                out[token] = (out[token][0], from_json(zlib.decompress(body), Pair))
        return out

    def stored_pairs(self, *, page: int = 1000) -> Iterator[Pair]:
        """Every kept pair (redacted as stored), for re-comparing.

        Pages are read whole and their connection released before they are handed
        out, so a caller may write results back while it iterates.
        """
        last = ""
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(pairs.c.token, pairs.c.body).where(pairs.c.token > last)
                                    .order_by(pairs.c.token).limit(page)).all()
            if not rows:
                return
            for _token, body in rows:
                yield from_json(zlib.decompress(body), Pair)
            last = rows[-1][0]

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets reports read while compare writes; NORMAL is durable enough with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def open_catalogue(url: str, *, migrate: bool = True) -> Catalogue:
    """Open (and create or migrate to the latest revision) the catalogue at a SQLAlchemy URL."""
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise StoreError(f"catalogue URL {mask_url(url)} cannot be used: {exc}",
                         hint="use e.g. sqlite:///shadow.db or postgresql+psycopg://user@host/db") from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    if migrate:
        for attempt in range(6):
            try:
                upgrade(engine)
                break
            except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
                # Workers started together race to create a new catalogue: the loser finds the
                # tables made (or the file locked) and tries again, then sees the latest revision.
                racing = any(word in str(exc.orig).lower() for word in ("already exists", "locked", "duplicate"))
                if not racing or attempt == 5:
                    raise StoreError(f"catalogue store {mask_url(url)} cannot be opened: {exc.orig}",
                                     hint="check that the database is reachable and the path writable") from None
                time.sleep(0.2 * (attempt + 1))
    return Catalogue(engine)


# Held until the migrating transaction ends (any fixed key will do); SQLite locks its file by itself.
_MIGRATION_LOCKS = {"postgresql": "SELECT pg_advisory_xact_lock(7165023)"}


def upgrade(engine: Engine) -> None:
    """Bring the catalogue schema to the latest Alembic revision."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        lock = _MIGRATION_LOCKS.get(conn.dialect.name)
        if lock is not None:
            # Processes started together on a new database (a proxy and its workers) take turns: the
            # first migrates, the others wait here, then find the latest revision and change nothing.
            conn.execute(sa.text(lock))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
