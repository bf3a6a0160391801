"""`shadow reconcile` without servers: SQLite against SQLite, the merge and the bisection as properties,
the SQL Server statements at compile level."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from reports.reconcile import reconcile_table, reconcile_token
from reports.reconcile_checksum import checksum
from reports.reconcile_merge import merge_windows
from reports.reconcile_read import Side, checksum_sql, select_sql
from rules.catalogue import open_catalogue
from rules.compare import Comparator, quirk_field, quirk_id
from shadow.cli import app
from shadow.config import ColumnMapping, RouteState, TableConfig, parse_config
from shadow.errors import ConfigError
from shadow.model import Command, Outcome, Pair, Status, Target

LEGACY_DDL = "CREATE TABLE LOADS (LOAD_REF INTEGER PRIMARY KEY, STATUS_CD TEXT, WGT TEXT, DRIVER TEXT, NOTE TEXT)"
NEW_DDL = "CREATE TABLE loads (load_id INTEGER PRIMARY KEY, status TEXT, weight_kg NUMERIC, driver_name TEXT, note TEXT)"
MAPPING = """rename = { LOAD_REF = "load_id", STATUS_CD = "status", WGT = "weight_kg", DRIVER = "driver_name", NOTE = "note" }
values = { status = { A = "assigned", O = "open" } }
coerce = { weight_kg = "number" }"""


def config_text(folder: Path, legacy: str, new: str, extra: str = "", mapping: str = MAPPING, table: str = "LOADS",
                new_table: str = "loads") -> str:
    return f"""
[targets.legacy]
url = "http://127.0.0.1:1"
state = "{legacy}"
[targets.new]
url = "http://127.0.0.1:2"
state = "{new}"
[store]
url = "sqlite:///{folder / 'catalogue.db'}"
rules = "{folder / 'rules'}"
[tables.loads]
legacy = "{table}"
new = "{new_table}"
key = ["load_id"]
{mapping}
{extra}
"""


def planted(folder: Path, n: int = 500) -> tuple[Path, Path]:
    """Two SQLite databases holding one table, mapped, with the planted differences below."""
    legacy, new = folder / "legacy.sqlite", folder / "new.sqlite"
    with sqlite3.connect(legacy) as a, sqlite3.connect(new) as b:
        a.execute(LEGACY_DDL)
        b.execute(NEW_DDL)
        a.executemany("INSERT INTO LOADS VALUES (?, ?, ?, ?, ?)",
                      [(i, "A" if i % 2 else "O", f"{1000 + i}.00", f"driver {i}", "n") for i in range(1, n + 1)])
        b.executemany("INSERT INTO loads VALUES (?, ?, ?, ?, ?)",
                      [(i, "assigned" if i % 2 else "open", 1000 + i, f"driver {i}", "n") for i in range(1, n + 1)])
        b.execute("UPDATE loads SET status = 'cancelled' WHERE load_id = 41")          # changed value
        b.execute("DELETE FROM loads WHERE load_id = 77")                              # missing in new
        b.execute("INSERT INTO loads VALUES (9001, 'open', 5, 'driver x', 'n')")      # extra in new
        a.execute("UPDATE LOADS SET DRIVER = DRIVER || '    ' WHERE LOAD_REF = 123")  # CHAR padding: a rule trims it
        a.execute("UPDATE LOADS SET NOTE = '' WHERE LOAD_REF = 200")                   # '' on legacy …
        b.execute("UPDATE loads SET note = NULL WHERE load_id = 200")                  # … NULL on new
    (folder / "rules").mkdir(exist_ok=True)
    (folder / "rules" / "padding.toml").write_text('[[normalise]]\npath = "**.driver_name"\ntrim = true\n')
    return legacy, new


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tables(tmp_path: Path) -> Any:
    tmp_path = tmp_path / "a folder #1"  # spaces and '#' in the path: SQLite file URIs must quote them
    tmp_path.mkdir()
    legacy, new = planted(tmp_path)
    config = parse_config(config_text(tmp_path, f"sqlite:///{legacy}", f"sqlite:///{new}"))
    return SimpleNamespace(folder=tmp_path, legacy=legacy, new=new, config=config)


# -- config ------------------------------------------------------------------------------------

def test_route_state_and_tables_share_one_column_mapping() -> None:
    assert issubclass(RouteState, ColumnMapping) and issubclass(TableConfig, ColumnMapping)
    for name, field in TableConfig.model_fields.items():
        assert field.description, f"TableConfig.{name} has no description"


@pytest.mark.parametrize("table, expected", [
    ('legacy = "LOADS"\nnew = "loads"\nkey = []', "tables.loads.key"),
    ('legacy = "LOADS; DROP"\nnew = "loads"\nkey = ["load_id"]', "expected a table name"),
    ('legacy = "LOADS"\nnew = "loads"\nkey = ["load_id"]\nvalues = { load_id = { a = "b" } }', "key column 'load_id'"),
    ('legacy = "LOADS"\nnew = "loads"\nkey = ["load_id"]\nmethod = "fast"', "tables.loads.method"),
    ('legacy = "LOADS"\nnew = "loads"\nkey = ["load_id"]\nbogus = 1', "unknown key"),
])
def test_a_bad_table_section_names_the_key_and_the_reason(table: str, expected: str) -> None:
    text = f"""[targets.legacy]\nurl = "http://a"\nstate = "sqlite:///a.db"\n[targets.new]\nurl = "http://b"
state = "sqlite:///b.db"\n[tables.loads]\n{table}\n"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="shadow.toml")
    assert expected in str(caught.value) and "shadow.toml" in str(caught.value)


def test_a_table_needs_both_state_databases() -> None:
    text = """[targets.legacy]\nurl = "http://a"\n[targets.new]\nurl = "http://b"\nstate = "sqlite:///b.db"
[tables.loads]\nlegacy = "LOADS"\nnew = "loads"\nkey = ["load_id"]\n"""
    with pytest.raises(ConfigError, match=r"\[targets.legacy\] has no state"):
        parse_config(text)


# -- quirk grouping --------------------------------------------------------------------------------

def _pair(kind: str, legacy: dict, new: dict) -> Pair:
    return Pair(command=Command(kind=kind, token=f"{kind}-1"),
                legacy=Outcome(target=Target.LEGACY, status=Status.OK, state=legacy),
                new=Outcome(target=Target.NEW, status=Status.OK, state=new))


def test_reconcile_quirks_group_by_table_and_column_apart_from_traffic_quirks() -> None:
    comparator = Comparator()
    traffic = comparator.compare(_pair("assign_load", {"status": "A"}, {"status": "assigned"}))
    other_traffic = comparator.compare(_pair("cancel_load", {"status": "A"}, {"status": "assigned"}))
    loads = comparator.compare(_pair("reconcile:loads", {"status": "A"}, {"status": "assigned"}))
    stops = comparator.compare(_pair("reconcile:stops", {"status": "A"}, {"status": "assigned"}))
    assert traffic.differences[0].quirk == other_traffic.differences[0].quirk   # unchanged for traffic
    assert loads.differences[0].quirk == quirk_id("loads.status", "changed", "enum-mapping")
    assert len({traffic.differences[0].quirk, loads.differences[0].quirk, stops.differences[0].quirk}) == 3
    assert quirk_field("reconcile:loads", "state.status") == "loads.status"
    assert quirk_field("assign_load", "state.status") == "status"


# -- SQLite against SQLite ---------------------------------------------------------------------------

def test_reconcile_finds_exactly_the_planted_differences(tables: Any) -> None:
    before = digest(tables.legacy), digest(tables.new)
    result = reconcile_table(tables.config, "loads")
    assert (result.only_legacy, result.only_new, result.differing) == (1, 1, 2)
    assert result.only_legacy_examples == [{"load_id": 77}] and result.only_new_examples == [{"load_id": 9001}]
    assert sorted(result.columns) == ["note", "status"]
    assert result.columns["note"].transitions == {"null-vs-empty": 1}
    assert result.columns["note"].examples[0] == {"key": {"load_id": 200}, "legacy": "", "new": None,
                                                  "transition": "null-vs-empty"}
    assert result.columns["status"].examples[0]["legacy"] == "assigned"  # legacy 'A' mapped by values
    assert result.legacy_rows == 500 and result.new_rows == 500 and not result.agree
    assert (digest(tables.legacy), digest(tables.new)) == before  # read-only on both


def test_small_batches_find_the_same_rows(tables: Any) -> None:
    text = config_text(tables.folder, f"sqlite:///{tables.legacy}", f"sqlite:///{tables.new}", extra="batch = 100")
    result = reconcile_table(parse_config(text), "loads")
    assert (result.only_legacy, result.only_new, result.differing) == (1, 1, 2)


def test_differences_are_filed_as_reconcile_quirks_and_rerunning_replaces_them(tables: Any) -> None:
    catalogue = open_catalogue(tables.config.store.url.reveal())
    try:
        first = reconcile_table(tables.config, "loads", catalogue=catalogue)
        quirks = catalogue.quirks(command="reconcile:loads")
        assert sorted((q.field, q.change) for q in quirks) == [("loads.@state", "added"), ("loads.@state", "removed"),
                                                                ("loads.note", "type"), ("loads.status", "changed")]
        assert sum(q.differences for q in quirks) == 4
        assert first.stored is not None and first.stored.pairs == 4
        again = reconcile_table(tables.config, "loads", catalogue=catalogue)
        assert again.stored is not None and again.stored.replaced == 4
        assert sum(q.differences for q in catalogue.quirks(command="reconcile:loads")) == 4  # not doubled
        with sqlite3.connect(tables.new) as conn:  # the new engine's team fixes row 41
            conn.execute("UPDATE loads SET status = 'assigned' WHERE load_id = 41")
        fixed = reconcile_table(tables.config, "loads", catalogue=catalogue)
        assert fixed.differing == 1 and fixed.recovered == 1
        assert {q.field for q in catalogue.quirks(command="reconcile:loads")} == {"loads.note", "loads.@state"}
    finally:
        catalogue.close()


def test_where_limits_both_sides(tables: Any) -> None:
    result = reconcile_table(tables.config, "loads", where="rowid <= 100")
    assert (result.only_legacy, result.only_new, result.differing) == (1, 0, 1)
    assert result.legacy_rows == 100


def test_a_missing_table_or_key_column_is_named(tables: Any) -> None:
    text = config_text(tables.folder, f"sqlite:///{tables.legacy}", f"sqlite:///{tables.new}", new_table="nope")
    with pytest.raises(Exception, match="has no table nope"):
        reconcile_table(parse_config(text), "loads")
    text = config_text(tables.folder, f"sqlite:///{tables.legacy}", f"sqlite:///{tables.new}", mapping="")
    with pytest.raises(ConfigError, match="key column 'load_id' is not in the legacy table"):
        reconcile_table(parse_config(text), "loads")
    with pytest.raises(ConfigError, match="no table 'stops'"):
        reconcile_table(tables.config, "stops")


def test_tokens_are_deterministic_and_fit_the_catalogue() -> None:
    assert reconcile_token("loads", [41]) == "reconcile:loads:41"
    long = reconcile_token("loads", ["x" * 100, 7])
    assert len(long) <= 64 and long == reconcile_token("loads", ["x" * 100, 7])


def test_cli_exit_codes_and_json(tables: Any) -> None:
    config = tables.folder / "shadow.toml"
    config.write_text(config_text(tables.folder, f"sqlite:///{tables.legacy}", f"sqlite:///{tables.new}"))
    runner = CliRunner()
    found = runner.invoke(app, ["reconcile", "--config", str(config), "--table", "loads", "--json"])
    assert found.exit_code == 1, found.output
    body = json.loads(found.stdout)
    assert (body["only_legacy"], body["only_new"], body["differing"]) == (1, 1, 2)
    listed = runner.invoke(app, ["quirks", "list", "--config", str(config), "--command", "reconcile:loads", "--json"])
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 4
    agree = runner.invoke(app, ["reconcile", "--config", str(config), "--table", "loads", "--where",
                                "rowid BETWEEN 1 AND 40", "--no-store"])
    assert agree.exit_code == 0 and "the tables agree" in agree.stdout
    bad = runner.invoke(app, ["reconcile", "--config", str(config), "--table", "stops"])
    assert bad.exit_code == 2
    gone = tables.folder / "gone.toml"
    gone.write_text(config_text(tables.folder, f"sqlite:///{tables.folder / 'missing.sqlite'}",
                                f"sqlite:///{tables.new}"))
    unreachable = runner.invoke(app, ["reconcile", "--config", str(gone), "--table", "loads"])
    assert unreachable.exit_code == 3


# -- the merge, as a property ---------------------------------------------------------------------------

def _batches(keys: list[int], values: dict[int, int], sizes: list[int], key: str) -> list[pa.RecordBatch]:
    out, start, index = [], 0, 0
    while start < len(keys):
        size = sizes[index % len(sizes)]
        chunk = keys[start: start + size]
        out.append(pa.RecordBatch.from_pydict({key: pa.array(chunk, pa.int64()),
                                               "v": pa.array([values[k] for k in chunk], pa.int64())}))
        start += size
        index += 1
    return out


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 300), max_size=120), st.sets(st.integers(0, 300), max_size=120),
       st.sets(st.integers(0, 300), max_size=40), st.lists(st.integers(1, 17), min_size=1, max_size=4),
       st.lists(st.integers(1, 17), min_size=1, max_size=4))
def test_merge_reports_exactly_the_symmetric_difference_and_the_changed(legacy_keys: set[int], new_keys: set[int],
                                                                        changed: set[int], left_sizes: list[int],
                                                                        right_sizes: list[int]) -> None:
    left_values = {k: k for k in legacy_keys}
    right_values = {k: k + (1 if k in changed else 0) for k in new_keys}
    left = _batches(sorted(legacy_keys), left_values, left_sizes, "LOAD_REF")
    right = _batches(sorted(new_keys), right_values, right_sizes, "load_id")

    def same(lt: pa.Table, rt: pa.Table, li: pa.Array, ri: pa.Array) -> pa.Array:
        import pyarrow.compute as pc
        return pc.equal(lt.column("v").take(li), rt.column("v").take(ri)).combine_chunks() \
            if len(li) else pa.array([], pa.bool_())

    only_l, only_r, differing, matched = set(), set(), set(), 0
    for window in merge_windows(iter(left), iter(right), (["LOAD_REF"], ["load_id"]), same):
        if window.legacy is not None:
            keys = window.legacy.column("LOAD_REF").to_pylist()
            only_l |= {keys[i] for i in window.only_legacy}
            differing |= {keys[i] for i in window.differing[:, 0]}
        if window.new is not None:
            keys = window.new.column("load_id").to_pylist()
            only_r |= {keys[i] for i in window.only_new}
        matched += window.matched_rows
    assert only_l == legacy_keys - new_keys
    assert only_r == new_keys - legacy_keys
    assert differing == changed & legacy_keys & new_keys
    assert matched == len(legacy_keys & new_keys)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="ab\u00e9Z ", max_size=4), unique=True, max_size=60),
       st.lists(st.text(alphabet="ab\u00e9Z ", max_size=4), unique=True, max_size=60),
       st.integers(1, 9))
def test_merge_of_text_keys_in_code_point_order(left: list[str], right: list[str], size: int) -> None:
    lk, rk = sorted(left), sorted(right)
    batches = [[pa.RecordBatch.from_pydict({"k": pa.array(keys[i: i + size], pa.string())})
                for i in range(0, len(keys), size)] for keys in (lk, rk)]
    only_l, only_r = set(), set()
    for window in merge_windows(iter(batches[0]), iter(batches[1]), (["k"], ["k"]),
                                lambda lt, rt, li, ri: pa.array([True] * len(li), pa.bool_())):
        if window.legacy is not None:
            only_l |= {window.legacy.column("k")[int(i)].as_py() for i in window.only_legacy}
        if window.new is not None:
            only_r |= {window.new.column("k")[int(i)].as_py() for i in window.only_new}
    assert only_l == set(left) - set(right) and only_r == set(right) - set(left)


def test_keys_out_of_order_are_refused() -> None:
    left = [pa.RecordBatch.from_pydict({"k": pa.array([3, 1], pa.int64())})]
    right = [pa.RecordBatch.from_pydict({"k": pa.array([1], pa.int64())})]
    with pytest.raises(ConfigError, match="strictly ascending"):
        list(merge_windows(iter(left), iter(right), (["k"], ["k"]), lambda *a: pa.array([True])))


# -- the bisection, as a property ---------------------------------------------------------------------

class FakeSide:
    """A side whose checksum queries are answered from a dict of rows, in Python."""

    def __init__(self, name: str, rows: dict[int, int]) -> None:
        self.name, self.rows = name, rows

    def execute(self, query: tuple) -> list[tuple]:
        if query[0] == "bounds":
            keys = sorted(self.rows)
            return [(keys[0] if keys else None, keys[-1] if keys else None, len(keys))]
        _, low, high, buckets = query
        width = max(1, -(-(high - low) // buckets))
        sums: dict[int, list[int]] = {}
        for key, value in self.rows.items():
            if low <= key < high:
                bucket = sums.setdefault((key - low) // width, [0, 0])
                bucket[0] += 1
                bucket[1] += hash((key, value)) % 2**40
        return [(b, n, h) for b, (n, h) in sums.items()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(st.integers(0, 5000), min_size=1, max_size=400), st.sets(st.integers(0, 5000), max_size=15),
       st.sets(st.integers(0, 5000), max_size=15), st.integers(2, 8), st.integers(1, 40))
def test_bisection_streams_every_differing_key_and_counts_every_equal_row(keys: set[int], changed: set[int],
                                                                          dropped: set[int], buckets: int,
                                                                          leaf: int) -> None:
    import reports.reconcile_checksum as module

    legacy = {k: k for k in keys}
    new = {k: k + (k in changed) for k in keys - dropped}
    truth = {k for k in keys if k in dropped or k in changed}
    plan = SimpleNamespace(legacy=FakeSide("legacy", legacy), new=FakeSide("new", new),
                           keys=[SimpleNamespace(legacy="k", new="k")], columns=[], where={"legacy": None, "new": None})
    run = SimpleNamespace(result=SimpleNamespace(legacy_rows=0, new_rows=0, matched_rows=0, ranges=0,
                                                 ranges_differing=0), on_progress=None)
    streamed: list[tuple[int, int]] = []
    original = module.bounds_sql, module.checksum_sql
    module.bounds_sql = lambda side, key, where: ("bounds",)
    module.checksum_sql = lambda side, keys, columns, where, low, high, n: ("sums", low, high, n)
    try:
        checksum(plan, run, lambda _plan, _run, key_range: streamed.append(key_range), buckets=buckets, leaf=leaf)
    finally:
        module.bounds_sql, module.checksum_sql = original
    for key in truth:
        assert any(low <= key < high for low, high in streamed), key
    in_streamed = sum(1 for k in legacy if any(low <= k < high for low, high in streamed))
    assert run.result.legacy_rows == len(legacy) - in_streamed
    ordered = sorted(streamed)
    assert all(a[1] <= b[0] for a, b in zip(ordered, ordered[1:], strict=False))  # ranges never overlap


# -- SQL Server and Postgres statements, at compile level --------------------------------------------------

def _side(dialect: Any, name: str = "legacy") -> Side:
    columns = {"LoadRef": sa.Integer(), "Code": sa.String(20), "Status": sa.String(10), "Weight": sa.Numeric(10, 2)}
    return Side(name, "x://", "dbo.Loads", SimpleNamespace(dialect=dialect), columns=columns)


def test_tsql_checksum_of_key_ranges_compiles_with_hashbytes() -> None:
    from sqlalchemy.dialects import mssql

    sql = checksum_sql(_side(mssql.dialect()), ["LoadRef"], ["Status", "Weight"], "Status <> 'X'", 0, 1000, 16)
    assert "hashbytes('md5', concat(" in sql.lower() and "AS BIGINT)" in sql and "NUMERIC(38, 0)" in sql
    assert "FROM dbo.[Loads]" in sql and "[LoadRef] >= 0 AND [LoadRef] < 1000" in sql
    assert "GROUP BY (CAST([LoadRef] AS BIGINT) - 0) / 63" in sql  # integer buckets of 1000 / 16 keys
    assert "(Status <> 'X')" in sql and "count(*)" in sql.lower() and ";" not in sql
    assert "CAST([Status] AS NVARCHAR(max))" in sql  # never NVARCHAR's default of 30 characters
    assert "CASE WHEN ([Status] IS NULL) THEN '-'" in sql  # NULL apart from ''"


def test_tsql_select_sorts_text_keys_by_code_point() -> None:
    from sqlalchemy.dialects import mssql

    sql = select_sql(_side(mssql.dialect()), ["Code"], ["Status"], None)
    assert "ORDER BY" in sql and "COLLATE Latin1_General_BIN2" in sql and "IS NOT NULL" in sql
    ranged = select_sql(_side(mssql.dialect()), ["LoadRef"], ["Status"], None, (10, 20))
    assert "[LoadRef] >= 10 AND [LoadRef] < 20 ORDER BY [LoadRef]" in ranged and "COLLATE" not in ranged


def test_postgres_checksum_uses_md5_and_text_keys_sort_in_c_collation() -> None:
    from sqlalchemy.dialects import postgresql

    sql = checksum_sql(_side(postgresql.dialect()), ["LoadRef"], ["Status"], None, 0, 100, 4)
    assert "md5(" in sql and "BIT(60)" in sql and "GROUP BY" in sql
    assert 'COLLATE "C"' in select_sql(_side(postgresql.dialect()), ["Code"], ["Status"], None)


def test_a_column_null_throughout_the_first_batch_then_text_is_read_and_compared(tmp_path: Path) -> None:
    legacy, new = planted(tmp_path, n=400)
    for path, table, key in ((legacy, "LOADS", "LOAD_REF"), (new, "loads", "load_id")):
        with sqlite3.connect(path) as conn:  # NOTE / note: NULL for the first 150 rows, as sparse legacy columns are
            conn.execute(f"UPDATE {table} SET {'NOTE' if table == 'LOADS' else 'note'} = NULL WHERE {key} <= 150")
    with sqlite3.connect(new) as conn:
        conn.execute("UPDATE loads SET note = 'changed' WHERE load_id = 300")
    text = config_text(tmp_path, f"sqlite:///{legacy}", f"sqlite:///{new}", extra="batch = 100")
    result = reconcile_table(parse_config(text), "loads")
    assert (result.only_legacy, result.only_new, result.differing) == (1, 1, 3)
    assert sorted(result.columns) == ["note", "status"] and result.columns["note"].rows == 2
    assert result.legacy_rows == 400
