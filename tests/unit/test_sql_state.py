"""SQL state read-back: statements with bound parameters (checked as T-SQL too), one canonical form
for both schemas, and eventual-consistency settling. SQLite files only: no server."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import uuid
from decimal import Decimal

import pytest
from sqlalchemy.dialects import mssql, postgresql

from adapters.sql import SqlStateReader, build_statement, canonical_row, jsonable
from shadow.config import RouteState, SqlSource, parse_config
from shadow.demo.run import free_port
from shadow.errors import ConfigError, TargetError
from shadow.model import Command, Target
from shadow.settle import read_settled


def tsql(source: SqlSource) -> str:
    # As pyodbc sends it: qmark parameters (the dialect alone, without the driver loaded, would say :name).
    return " ".join(str(build_statement(source).compile(dialect=mssql.pyodbc.dialect(paramstyle="qmark"))).split())


def test_table_and_key_compile_to_tsql_with_bound_parameters() -> None:
    source = SqlSource(table="dbo.LOADS", key={"load_id": "LOAD_REF", "zone": "ZONE_CD"})
    assert tsql(source) == "SELECT * FROM dbo.[LOADS] WHERE [LOAD_REF] = ? AND [ZONE_CD] = ?"


def test_reserved_words_are_bracketed_in_tsql() -> None:
    assert tsql(SqlSource(table="order", key={"id": "key"})) == "SELECT * FROM [order] WHERE [key] = ?"


def test_a_query_binds_its_named_parameters() -> None:
    source = SqlSource(query="SELECT LOAD_REF, STATUS_CD FROM dbo.LOADS WHERE LOAD_REF = :load_id", many=True)
    assert tsql(source) == "SELECT LOAD_REF, STATUS_CD FROM dbo.LOADS WHERE LOAD_REF = ?"
    compiled = build_statement(SqlSource(table="loads", key={"load_id": "id"})).compile(dialect=postgresql.dialect())
    assert "%(load_id)s" in str(compiled)


def test_values_never_reach_the_sql_text(tmp_path) -> None:
    db = tmp_path / "legacy.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE loads (load_ref TEXT, status TEXT)")
        conn.execute("INSERT INTO loads VALUES ('L-1', 'A')")
    reader = SqlStateReader(Target.LEGACY, f"sqlite:///{db}", config_routes(f"sqlite:///{db}").routes)
    hostile = Command(kind="assign_load", keys={"load_id": "L-1' OR '1'='1"})
    assert asyncio.run(reader.read(hostile)) is None  # bound: a strange id is just an id that matches nothing
    assert asyncio.run(reader.read(Command(kind="assign_load", keys={"load_id": "L-1"}))) == \
        {"load_id": "L-1", "status": "assigned"}


def config_routes(legacy_url: str, new_url: str = "sqlite://"):
    return parse_config(f"""
[targets.legacy]
url = "http://127.0.0.1:1"
state = "{legacy_url}"
[targets.new]
url = "http://127.0.0.1:2"
state = "{new_url}"
[[routes]]
match = "POST /loads/{{load_id}}/assign"
command = "assign_load"
keys = ["load_id"]
[routes.state]
legacy = {{ table = "loads", key = {{ load_id = "load_ref" }} }}
new = {{ query = "SELECT * FROM loads WHERE load_id = :load_id" }}
rename = {{ load_ref = "load_id" }}
values = {{ status = {{ A = "assigned" }} }}
""")


def test_legacy_rows_are_mapped_into_the_new_schema() -> None:
    state = RouteState(rename={"LOAD_REF": "load_id", "WGT": "weight_kg", "HAZ": "hazmat"},
                       values={"status": {"A": "assigned", "1": "one"}},
                       coerce={"weight_kg": "number", "hazmat": "boolean"})
    legacy = {"LOAD_REF": "L-1", "status": "A", "WGT": Decimal("12000.00"), "HAZ": 1}
    new = {"load_id": "L-1", "status": "assigned", "weight_kg": 12000, "hazmat": True}
    assert canonical_row(legacy, state, legacy=True) == new
    assert canonical_row(new, state, legacy=False) == new


def test_database_values_become_json_values() -> None:
    when = dt.datetime(2026, 11, 2, 8, 0, 0, 123000)
    assert jsonable(Decimal("12.50")) == 12.5 and jsonable(Decimal("12.00")) == 12
    assert jsonable(when) == "2026-11-02T08:00:00.123000"
    assert jsonable(when.replace(tzinfo=dt.timezone(dt.timedelta(hours=-6)))) == "2026-11-02T14:00:00.123000Z"
    assert jsonable(dt.date(2026, 11, 2)) == "2026-11-02" and jsonable(b"\x01\xff") == "01ff"
    token = uuid.uuid4()
    assert jsonable(token) == str(token)


def test_a_route_reading_a_database_needs_the_targets_state_url() -> None:
    text = '''
[targets.legacy]
url = "http://a:1"
[targets.new]
url = "http://b:2"
[[routes]]
match = "POST /x"
command = "x"
[routes.state]
legacy = { table = "loads", key = { id = "id" } }
'''
    with pytest.raises(ConfigError, match=r"routes\[0\].state.legacy reads a database, but \[targets.legacy\] has no state"):
        parse_config(text)
    with pytest.raises(ConfigError, match="either query"):
        parse_config(text.replace('table = "loads", key = { id = "id" }', 'query = "SELECT 1", table = "t"'))
    with pytest.raises(ConfigError, match="table needs key"):
        parse_config(text.replace(', key = { id = "id" }', ""))


def test_an_unreachable_sql_server_is_named_without_its_password() -> None:
    port = free_port()
    url = f"mssql+pyodbc://sa:S3cret-pass@127.0.0.1:{port}/dispatch?driver=FreeTDS&timeout=2"
    routes = config_routes("sqlite://").routes
    reader = SqlStateReader(Target.LEGACY, url, routes)
    with pytest.raises(TargetError) as info:
        asyncio.run(reader.read(Command(kind="assign_load", keys={"load_id": "L-1"})))
    message = str(info.value)
    assert "S3cret-pass" not in message
    assert f"host 127.0.0.1, port {port}, driver FreeTDS" in message


@pytest.mark.skipif(not os.environ.get("SHADOW_MSSQL_URL"), reason="set SHADOW_MSSQL_URL to run against SQL Server")
def test_live_sql_server_read_back() -> None:  # pragma: no cover - needs a SQL Server
    url = os.environ["SHADOW_MSSQL_URL"]
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    table = f"shadow_test_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (LOAD_REF VARCHAR(20), STATUS_CD CHAR(1), WGT DECIMAL(10,2))"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES ('L-1', 'A', 12000.00)"))
    try:
        routes = parse_config(f"""
[targets.legacy]
url = "http://127.0.0.1:1"
state = "{url}"
[targets.new]
url = "http://127.0.0.1:2"
[[routes]]
match = "POST /loads/{{load_id}}/assign"
command = "assign_load"
keys = ["load_id"]
[routes.state]
legacy = {{ table = "dbo.{table}", key = {{ load_id = "LOAD_REF" }} }}
rename = {{ LOAD_REF = "load_id", STATUS_CD = "status", WGT = "weight_kg" }}
values = {{ status = {{ A = "assigned" }} }}
""").routes
        row = asyncio.run(SqlStateReader(Target.LEGACY, url, routes).read(Command(kind="assign_load",
                                                                                 keys={"load_id": "L-1"})))
        assert row == {"load_id": "L-1", "status": "assigned", "weight_kg": 12000}
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))


class LaggingReader:
    """A state that shows the command's effect only from the n-th read on."""

    def __init__(self, before: dict, after: dict, from_read: int) -> None:
        self.before, self.after, self.from_read, self.reads = before, after, from_read, 0

    async def read(self, command: Command) -> dict:
        self.reads += 1
        return self.after if self.reads >= self.from_read else self.before

    async def close(self) -> None:
        pass


def settle(reader, reference, **kwargs):
    options = {"deadline": 2.0, "quiet": 10.0, "interval": 0.01, "equal": lambda a, b: a == b} | kwargs
    return asyncio.run(read_settled(reader, Command(kind="x"), reference, **options))


def test_a_state_read_too_early_settles_to_equal() -> None:
    result = settle(LaggingReader({"status": "open"}, {"status": "assigned"}, from_read=5), {"status": "assigned"})
    assert result.converged and result.reads == 5 and result.state == {"status": "assigned"}
    assert result.settle_ms >= 30  # four waits of 10 ms before the fifth read


def test_a_state_still_different_at_the_deadline_is_reported() -> None:
    result = settle(LaggingReader({"status": "open"}, {"status": "assigned"}, from_read=10_000), {"status": "assigned"},
                    deadline=0.1)
    assert not result.converged and result.state == {"status": "open"} and result.settle_ms >= 100


def test_a_state_that_stops_changing_ends_the_wait_early() -> None:
    reader = LaggingReader({"status": "open"}, {"status": "cancelled"}, from_read=3)
    result = settle(reader, {"status": "assigned"}, deadline=10.0, quiet=0.05)
    assert not result.converged and result.state == {"status": "cancelled"} and result.settle_ms < 5_000
