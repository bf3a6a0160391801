"""The quirk catalogue: pair results, their differences, and quirks with roll-ups.

Any SQLAlchemy URL works (SQLite file by default, Postgres at scale). Storing
is idempotent on the dispatch token: a pair compared again replaces its old
result, and the quirk counts move by the difference, so nothing counts twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rules.compare import PairResult
from rules.schema import differences, pair_results, quirks
from rules.transitions import DESCRIPTIONS
from shadow.errors import StoreError
from shadow.secrets import mask_url

__all__ = ["Catalogue", "Quirk", "Example", "IngestStats", "open_catalogue", "VERDICTS"]

VERDICTS = ("open", "reproduce", "retire", "noise")
_MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Example:
    """One occurrence of a quirk: which pair, where, and both values."""

    token: str
    path: str
    legacy: Any
    new: Any


@dataclass(frozen=True)
class Quirk:
    """Every difference sharing one fingerprint."""

    id: str
    command: str
    pattern: str
    change: str
    transition: str
    differences: int
    pairs: int
    first_seen: datetime | None
    last_seen: datetime | None
    verdict: str
    owner: str | None
    note: str | None
    example: Example | None
    examples: list[Example] = field(default_factory=list)

    @property
    def description(self) -> str:
        """The transition class in plain words."""
        return DESCRIPTIONS.get(self.transition, self.transition)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view, for --json output."""
        def example(e: Example | None) -> dict[str, Any] | None:
            return None if e is None else {"token": e.token, "path": e.path, "legacy": e.legacy, "new": e.new}

        return {
            "id": self.id, "command": self.command, "path": self.pattern, "change": self.change,
            "transition": self.transition, "description": self.description,
            "differences": self.differences, "pairs": self.pairs,
            "first_seen": _iso(self.first_seen), "last_seen": _iso(self.last_seen),
            "verdict": self.verdict, "owner": self.owner, "note": self.note,
            "example": example(self.example), "examples": [example(e) for e in self.examples],
        }


@dataclass
class IngestStats:
    """What one `store` call did."""

    pairs: int = 0
    replaced: int = 0
    matched: int = 0
    differences: int = 0


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: every stored time is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _unjson(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


class Catalogue:
    """A catalogue store opened on one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = mask_url(engine.url.render_as_string(hide_password=False))

    # -- writing -----------------------------------------------------------------

    def store(self, results: Iterable[PairResult], *, batch_size: int = 500) -> IngestStats:
        """Store pair results (upsert on dispatch token) and move the quirk roll-ups."""
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
            old = conn.execute(
                sa.select(differences.c.token, differences.c.fingerprint).where(differences.c.token.in_(tokens))
            ).all()
            stats.replaced += conn.execute(
                sa.select(sa.func.count()).select_from(pair_results).where(pair_results.c.token.in_(tokens))
            ).scalar_one()
            if old:
                conn.execute(differences.delete().where(differences.c.token.in_(tokens)))
            conn.execute(self._upsert_pairs(), [self._pair_row(r) for r in batch])
            rows = [
                {"token": r.token, "fingerprint": d.fingerprint, "path": d.path,
                 "legacy_value": _json(d.legacy), "new_value": _json(d.new)}
                for r in batch for d in r.differences
            ]
            if rows:
                conn.execute(differences.insert(), rows)
            self._move_rollups(conn, batch, old)
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

    def _upsert_pairs(self) -> Any:
        stmt = self._insert(pair_results)
        columns = {c.name: stmt.excluded[c.name] for c in pair_results.columns if c.name != "token"}
        return stmt.on_conflict_do_update(index_elements=["token"], set_=columns)

    @staticmethod
    def _pair_row(r: PairResult) -> dict[str, Any]:
        return {
            "token": r.token, "command": r.command, "zone": r.zone,
            "received_at": _naive_utc(r.received_at), "compared_at": _naive_utc(r.compared_at),
            "matched": r.matched, "difference_count": len(r.differences),
            "legacy_status": r.legacy_status, "new_status": r.new_status,
            "legacy_latency_ms": r.legacy_latency_ms, "new_latency_ms": r.new_latency_ms,
            "primary_target": r.primary,
        }

    def _move_rollups(self, conn: Connection, batch: list[PairResult], old: list[Any]) -> None:
        diff_delta: Counter[str] = Counter()
        pair_delta: Counter[str] = Counter()
        for _token, fp in old:
            diff_delta[fp] -= 1
        for _token, fp in set(map(tuple, old)):
            pair_delta[fp] -= 1
        fresh: dict[str, dict[str, Any]] = {}
        for r in batch:
            seen: set[str] = set()
            when = _naive_utc(r.received_at)
            for d in r.differences:
                diff_delta[d.fingerprint] += 1
                if d.fingerprint not in seen:
                    seen.add(d.fingerprint)
                    pair_delta[d.fingerprint] += 1
                row = fresh.get(d.fingerprint)
                if row is None:
                    fresh[d.fingerprint] = {
                        "fingerprint": d.fingerprint, "command": r.command, "pattern": d.pattern,
                        "change": d.change, "transition": d.transition, "first_seen": when, "last_seen": when,
                        "example_token": r.token, "example_path": d.path,
                        "example_legacy": _json(d.legacy), "example_new": _json(d.new), "verdict": "open",
                    }
                else:
                    row["first_seen"] = min(row["first_seen"], when)
                    row["last_seen"] = max(row["last_seen"], when)
        if fresh:
            stmt = self._insert(quirks)
            ex = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=["fingerprint"],
                set_={
                    "differences": quirks.c.differences + ex.differences,
                    "pairs": quirks.c.pairs + ex.pairs,
                    "first_seen": sa.case((ex.first_seen < quirks.c.first_seen, ex.first_seen),
                                          else_=quirks.c.first_seen),
                    "last_seen": sa.case((ex.last_seen > quirks.c.last_seen, ex.last_seen),
                                         else_=quirks.c.last_seen),
                },
            )
            conn.execute(stmt, [{**row, "differences": diff_delta.pop(fp), "pairs": pair_delta.pop(fp)}
                                for fp, row in fresh.items()])
        gone = [{"fp": fp, "d": diff_delta[fp], "p": pair_delta[fp]} for fp in diff_delta if diff_delta[fp]]
        if gone:
            conn.execute(
                quirks.update().where(quirks.c.fingerprint == sa.bindparam("fp")).values(
                    differences=quirks.c.differences + sa.bindparam("d"),
                    pairs=quirks.c.pairs + sa.bindparam("p"),
                ),
                gone,
            )

    # -- reading -----------------------------------------------------------------

    @staticmethod
    def _filtered(query: Any, verdict: str | None, command: str | None) -> Any:
        query = query.where(quirks.c.differences > 0)
        if verdict:
            query = query.where(quirks.c.verdict == verdict)
        if command:
            query = query.where(quirks.c.command == command)
        return query

    def count_quirks(self, *, verdict: str | None = None, command: str | None = None) -> int:
        """How many quirks `quirks()` would list without a limit."""
        query = self._filtered(sa.select(sa.func.count()).select_from(quirks), verdict, command)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def quirks(self, *, verdict: str | None = None, command: str | None = None,
               limit: int | None = None) -> list[Quirk]:
        """Quirks with at least one difference, most frequent first."""
        query = self._filtered(sa.select(quirks), verdict, command)
        query = query.order_by(quirks.c.differences.desc(), quirks.c.fingerprint)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [self._quirk(row) for row in conn.execute(query).mappings()]

    def quirk(self, quirk_id: str, *, examples: int = 5) -> Quirk:
        """One quirk by id (a unique prefix will do), with example occurrences."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(quirks).where(quirks.c.fingerprint.like(f"{quirk_id}%")).limit(2)
            ).mappings().all()
            if not rows:
                raise StoreError(f"no quirk with id {quirk_id!r} in {self.url}",
                                 hint="`shadow quirks list` shows the ids")
            if len(rows) > 1:
                raise StoreError(f"quirk id {quirk_id!r} is ambiguous in {self.url}",
                                 hint="give more characters of the id")
            found = conn.execute(
                sa.select(differences.c.token, differences.c.path, differences.c.legacy_value,
                          differences.c.new_value)
                .where(differences.c.fingerprint == rows[0]["fingerprint"])
                .order_by(differences.c.id).limit(examples)
            ).all()
        return self._quirk(rows[0], [Example(t, p, _unjson(a), _unjson(b)) for t, p, a, b in found])

    @staticmethod
    def _quirk(row: Any, examples: list[Example] | None = None) -> Quirk:
        example = None
        if row["example_token"] is not None:
            example = Example(row["example_token"], row["example_path"],
                              _unjson(row["example_legacy"]), _unjson(row["example_new"]))
        return Quirk(
            id=row["fingerprint"], command=row["command"], pattern=row["pattern"], change=row["change"],
            transition=row["transition"], differences=row["differences"], pairs=row["pairs"],
            first_seen=_utc(row["first_seen"]), last_seen=_utc(row["last_seen"]), verdict=row["verdict"],
            owner=row["owner"], note=row["note"], example=example, examples=examples or [],
        )

    def pair_results(self) -> Iterator[dict[str, Any]]:
        """Every stored pair result, oldest command first."""
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(pair_results).order_by(pair_results.c.received_at)).mappings():
                yield dict(row)

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
        engine = sa.create_engine(url, future=True)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise StoreError(f"catalogue URL {mask_url(url)} cannot be used: {exc}",
                         hint="use e.g. sqlite:///shadow.db or postgresql+psycopg://user@host/db") from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    if migrate:
        try:
            upgrade(engine)
        except sa.exc.OperationalError as exc:
            raise StoreError(f"catalogue store {mask_url(url)} cannot be opened: {exc.orig}",
                             hint="check that the database is reachable and the path writable") from None
    return Catalogue(engine)


def upgrade(engine: Engine) -> None:
    """Bring the catalogue schema to the latest Alembic revision."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")

