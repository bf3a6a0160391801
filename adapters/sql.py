"""SQL state read-back (SQLAlchemy Core): the touched entities as each side's database holds them.

Per command kind a route names a query, or a table and key columns, for each
side. Parameters are always bound, never formatted into SQL. Rows come back as
JSON-able dicts; the legacy side is mapped into the new schema's names and
values (renames, value maps), and coercions apply to both, so the two sides
compare in one canonical form. Works with sqlite:///, postgresql+psycopg://
and mssql+pyodbc:// URLs (pyodbc is imported by SQLAlchemy only when such an
engine is made: its wheel needs libodbc at import time).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from shadow.config import Route, RouteState, SqlSource
from shadow.errors import TargetError
from shadow.model import Command, Target
from shadow.secrets import mask_url

__all__ = ["SqlStateReader", "build_statement", "canonical_row", "jsonable"]

_PARAM = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


def build_statement(source: SqlSource) -> sa.Executable:
    """The statement a source runs; its parameters are bound by name."""
    if source.query is not None:
        return sa.text(source.query)
    assert source.table is not None
    schema, _, name = source.table.rpartition(".")
    table = sa.table(name, schema=schema or None)
    conditions = [sa.column(column) == sa.bindparam(param) for param, column in source.key.items()]
    return sa.select(sa.literal_column("*")).select_from(table).where(*conditions)


def parameters(source: SqlSource) -> list[str]:
    """The names a source's statement binds."""
    if source.query is not None:
        return list(dict.fromkeys(_PARAM.findall(source.query)))
    return list(source.key)


def jsonable(value: Any) -> Any:
    """A database value as JSON would carry it (Decimal as a number, times as ISO 8601 text)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return value


def _coerce(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "number":
        if isinstance(value, str):
            try:
                number = Decimal(value.strip())
            except ArithmeticError:
                return value
            return jsonable(number)
        return value
    if kind == "boolean":
        if isinstance(value, (int, bool)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("1", "0", "true", "false", "y", "n"):
            return value.strip().lower() in ("1", "true", "y")
        return value
    return value if isinstance(value, str) else str(value)


def canonical_row(row: Mapping[str, Any], state: RouteState, *, legacy: bool) -> dict[str, Any]:
    """One row in the canonical form: legacy names and values mapped, coercions on both sides."""
    out: dict[str, Any] = {}
    for column, value in row.items():
        name = state.rename.get(column, column) if legacy else column
        value = jsonable(value)
        if legacy and name in state.values and isinstance(value, (str, int, float)):
            value = state.values[name].get(value if isinstance(value, str) else str(value), value)
        if name in state.coerce:
            value = _coerce(value, state.coerce[name])
        out[name] = value
    return out


def _where(url: str) -> str:
    parsed = make_url(url)
    driver = parsed.query.get("driver") or parsed.drivername
    return f"host {parsed.host or 'local'}, port {parsed.port or 'default'}, driver {driver}"


class SqlStateReader:
    """A StateReader for one side: runs the route's statement for the command's keys."""

    def __init__(self, target: Target, url: str, routes: list[Route]) -> None:
        self.target = target
        self._url = url
        self._engine: Engine | None = None
        self._sources: dict[str, tuple[SqlSource, RouteState, sa.Executable]] = {}
        for route in routes:
            source = getattr(route.state, target.value) if route.state is not None else None
            if source is not None:
                self._sources[route.command] = (source, route.state, build_statement(source))  # type: ignore[arg-type]

    def statement(self, kind: str) -> sa.Executable | None:
        """The statement read after a command kind (None when the route reads no database)."""
        found = self._sources.get(kind)
        return found[2] if found else None

    def _engine_or_error(self) -> Engine:
        if self._engine is None:
            try:
                options: dict[str, Any] = {"pool_pre_ping": True}
                if self._url.startswith("sqlite"):
                    options["connect_args"] = {"check_same_thread": False}
                self._engine = sa.create_engine(self._url, **options)
            except (ImportError, sa.exc.ArgumentError) as exc:
                raise TargetError(
                    f"{self.target.value} state database {mask_url(self._url)} cannot be used ({_where(self._url)}): "
                    f"{exc}", hint="for mssql+pyodbc install unixodbc and tdsodbc (make test does) and name the "
                                   "driver: ?driver=FreeTDS") from None
        return self._engine

    def _query(self, statement: sa.Executable, params: dict[str, Any]) -> list[dict[str, Any]]:
        engine = self._engine_or_error()
        try:
            with engine.connect() as conn:
                return [dict(row) for row in conn.execute(statement, params).mappings()]
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise TargetError(
                f"{self.target.value} state database {mask_url(self._url)} cannot be reached ({_where(self._url)}): "
                f"{type(exc.orig).__name__ if exc.orig else type(exc).__name__}",
                hint="check the host, port and credentials of [targets.*] state") from None
        except sa.exc.DBAPIError as exc:
            raise TargetError(f"{self.target.value} state query failed on {mask_url(self._url)}: "
                              f"{str(exc.orig).splitlines()[0] if exc.orig else exc}") from None

    async def read(self, command: Command) -> Any:
        """The touched rows in canonical form: one dict (or None), or a list with many = true."""
        found = self._sources.get(command.kind)
        if found is None:
            return None
        source, state, statement = found
        payload = command.payload if isinstance(command.payload, Mapping) else {}
        params = {}
        for name in parameters(source):
            if name in command.keys:
                params[name] = command.keys[name]
            elif name in payload:
                params[name] = payload[name]
            else:
                raise TargetError(f"command {command.kind} has no value for state parameter :{name}",
                                  hint="add it to the route's keys, or to the command's payload")
        rows = await asyncio.to_thread(self._query, statement, params)
        mapped = [canonical_row(row, state, legacy=self.target is Target.LEGACY) for row in rows]
        if source.many:
            return mapped
        return mapped[0] if mapped else None

    async def close(self) -> None:
        """Release the connection pool."""
        if self._engine is not None:
            self._engine.dispose()
