"""Reading one side of a table reconciliation: SQL built per dialect, rows as sorted Arrow batches.

Every statement is a SELECT, on a connection opened read-only where the database
can enforce it (SQLite `mode=ro`, Postgres `default_transaction_read_only`).
SQLite and Postgres are read through ADBC drivers, which hand over Arrow
batches without a Python object per value; any other SQLAlchemy URL (SQL Server
through pyodbc, imported lazily) through a server-side cursor, `batch` rows at a time.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterator
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from shadow.errors import ConfigError, TargetError
from shadow.secrets import mask_url

__all__ = ["Side", "KeyKind", "open_side", "select_sql", "count_sql", "bounds_sql", "checksum_sql", "row_text"]

KeyKind = str  # "int" | "str" | "other"
log = logging.getLogger("reports.reconcile")
_END = object()


def _where_of(url: str) -> str:
    parsed = make_url(url)
    driver = parsed.query.get("driver") or parsed.drivername
    return f"host {parsed.host or parsed.query.get('host') or 'local'}, port {parsed.port or 'default'}, driver {driver}"


def _unreachable(side: str, url: str, exc: BaseException) -> TargetError:
    orig = getattr(exc, "orig", None)
    detail = str(orig or exc).splitlines()[0] if str(orig or exc) else type(exc).__name__
    return TargetError(f"{side} state database {mask_url(url)} cannot be read ({_where_of(url)}): {detail}",
                       hint=f"check [targets.{side}] state = … (host, port, credentials, table name)")


@dataclass
class Side:
    """One side of a reconciliation: its database, table and (source) column names and kinds."""

    name: str                      # legacy | new
    url: str
    table: str
    engine: Engine
    columns: dict[str, sa.types.TypeEngine] = field(default_factory=dict)   # source name → type
    decimal_text: set[str] = field(default_factory=set)   # columns read as numeric text (Postgres NUMERIC)
    sqlite_path: str | None = None

    @property
    def dialect(self) -> str:
        """sqlite | postgresql | mssql | …"""
        return self.engine.dialect.name

    def table_clause(self, names: list[str]) -> sa.TableClause:
        schema, _, name = self.table.rpartition(".")
        return sa.table(name, *(sa.column(n) for n in names), schema=schema or None)

    def key_kind(self, column: str) -> KeyKind:
        """How a key column sorts: as integers, as text, or otherwise."""
        kind = self.columns[column]
        if isinstance(kind, sa.Integer) or (isinstance(kind, sa.Numeric) and getattr(kind, "scale", None) == 0):
            return "int"
        if isinstance(kind, (sa.String, sa.Text, sa.Unicode)):
            return "str"
        return "other"

    def compile(self, statement: sa.Executable) -> str:
        """The statement as SQL text for this side's database (values inlined: integers and names only)."""
        return str(statement.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """A small SELECT's rows (counts, bounds, checksums), read-only."""
        try:
            with self.engine.connect() as conn:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                return [tuple(row) for row in conn.exec_driver_sql(sql)]
        except sa.exc.DBAPIError as exc:
            raise _unreachable(self.name, self.url, exc) from None

    def batches(self, sql: str, batch: int) -> Iterator[pa.RecordBatch]:
        """The rows of a SELECT as Arrow batches, read in a thread of their own (prefetching a few)."""
        produce = _adbc_or_cursor if _adbc_driver(self.dialect) else _cursor_batches
        found: queue.Queue[Any] = queue.Queue(maxsize=4)
        stop = threading.Event()

        def run() -> None:
            try:
                for item in produce(self, sql, batch):
                    while not stop.is_set():
                        try:
                            found.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                found.put(_END)
            except BaseException as exc:  # handed to the reading thread, which raises it
                found.put(exc)

        thread = threading.Thread(target=run, name=f"reconcile-{self.name}", daemon=True)
        thread.start()
        try:
            while True:
                item = found.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    if isinstance(item, (TargetError, ConfigError)):
                        raise item
                    raise _unreachable(self.name, self.url, item)
                yield item
        finally:
            stop.set()
            thread.join(timeout=30)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()


def _adbc_driver(dialect: str) -> Any:
    try:
        if dialect == "sqlite":
            import adbc_driver_sqlite.dbapi as driver
        elif dialect == "postgresql":
            import adbc_driver_postgresql.dbapi as driver
        else:
            return None
    except ImportError:  # the SQLAlchemy path reads the same rows, only slower
        return None
    return driver


def _adbc_connect(side: Side) -> Any:
    driver = _adbc_driver(side.dialect)
    url = side.engine.url
    if side.dialect == "sqlite":
        return driver.connect(f"file:{quote(side.sqlite_path or '')}?mode=ro")
    uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
    uri += ("&" if "?" in uri else "?") + "options=-c%20default_transaction_read_only%3Don"
    return driver.connect(uri)


def _adbc_or_cursor(side: Side, sql: str, batch: int) -> Iterator[pa.RecordBatch]:
    """ADBC's batches; should it give up on a column's type, the rest from a cursor (same order, rows skipped).

    ADBC's SQLite driver types each column from the first batch: a column NULL throughout it
    becomes int64, and text further down is then refused ("Type mismatch").
    """
    delivered = 0
    try:
        for record_batch in _adbc_batches(side, sql, batch):
            delivered += record_batch.num_rows
            yield record_batch
        return
    except OSError as exc:
        if "type mismatch" not in str(exc).lower():
            raise
        log.info("%s: ADBC gave up on a column type (%s); reading on through a cursor", side.name, exc)
    skip = delivered
    for record_batch in _cursor_batches(side, sql, batch):
        if skip >= record_batch.num_rows:
            skip -= record_batch.num_rows
            continue
        if skip:
            record_batch, skip = record_batch.slice(skip), 0
        yield record_batch


def _adbc_batches(side: Side, sql: str, batch: int) -> Iterator[pa.RecordBatch]:
    conn = _adbc_connect(side)
    try:
        cursor = conn.cursor()
        if side.dialect == "sqlite":
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch)})
        else:
            cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(16 * 1024 * 1024)})
        cursor.execute(sql)
        reader = cursor.fetch_record_batch()
        for record_batch in reader:
            yield _plain(side, record_batch)
        cursor.close()
    finally:
        conn.close()


def _plain(side: Side, record_batch: pa.RecordBatch) -> pa.RecordBatch:
    """Extension columns (Postgres NUMERIC arrives as opaque text) as their storage, remembered as decimals."""
    columns, changed = [], False
    for index, column in enumerate(record_batch.columns):
        if isinstance(column.type, pa.ExtensionType) or isinstance(column, pa.ExtensionArray):
            side.decimal_text.add(record_batch.schema.names[index])
            column = column.storage
            changed = True
        if column.null_count == len(column) and not pa.types.is_null(column.type):
            column = pa.nulls(len(column))  # typed by a later batch (a guess now would clash with it)
            changed = True
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=record_batch.schema.names) if changed else record_batch


def _cursor_batches(side: Side, sql: str, batch: int) -> Iterator[pa.RecordBatch]:
    with side.engine.connect().execution_options(stream_results=True, max_row_buffer=batch) as conn:
        result = conn.exec_driver_sql(sql)
        names = list(result.keys())
        while True:
            rows = result.fetchmany(batch)
            if not rows:
                return
            arrays = []
            for index, name in enumerate(names):
                values = [row[index] for row in rows]
                try:
                    arrays.append(pa.array(values))
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                    raise TargetError(f"{side.name} table {side.table}: column {name} holds values of several types",
                                      hint="reconcile a view that casts the column to one type") from None
                if pa.types.is_decimal(arrays[-1].type):
                    side.decimal_text.add(name)
                    arrays[-1] = pa.array([None if v is None else str(v) for v in values], pa.string())
            yield pa.RecordBatch.from_arrays(arrays, names=names)


def open_side(name: str, url: str, table: str) -> Side:
    """Connect (read-only) and read the table's columns; TargetError when it cannot be reached or has no such table."""
    try:
        options: dict[str, Any] = {}
        parsed = make_url(url)
        sqlite_path = None
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if not database or database == ":memory:":
                raise ConfigError(f"{name} state database {mask_url(url)}: reconciliation needs a SQLite file",
                                  hint="give state = \"sqlite:///path/to/file.db\"")
            engine = sa.create_engine(parsed.set(database=f"file:{quote(database)}",
                                                 query={**parsed.query, "mode": "ro", "uri": "true"}))
            sqlite_path = database
        else:
            if parsed.get_backend_name() == "postgresql":
                options["connect_args"] = {"options": "-c default_transaction_read_only=on"}
            engine = sa.create_engine(parsed, **options)
    except (ImportError, sa.exc.ArgumentError) as exc:
        raise TargetError(f"{name} state database {mask_url(url)} cannot be used ({_where_of(url)}): {exc}",
                          hint="for mssql+pyodbc install unixodbc and tdsodbc (make test does) and name the "
                               "driver: ?driver=FreeTDS") from None
    side = Side(name, url, table, engine, sqlite_path=sqlite_path)
    schema, _, bare = table.rpartition(".")
    try:
        columns = sa.inspect(engine).get_columns(bare, schema=schema or None)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise _unreachable(name, url, exc) from None
    except sa.exc.NoSuchTableError:
        columns = []
    if not columns:
        engine.dispose()
        raise TargetError(f"{name} state database {mask_url(url)} has no table {table}",
                          hint=f"check [tables.*] {name} = \"…\" (schema-qualify it if needed: dbo.Loads)")
    side.columns = {c["name"]: c["type"] for c in columns}
    return side


# -- SQL ----------------------------------------------------------------------------

def _conditions(side: Side, keys: list[str], where: str | None,
                key_range: tuple[int, int] | None) -> list[Any]:
    conditions: list[Any] = [sa.column(k).is_not(None) for k in keys]
    if where:
        conditions.append(sa.text(f"({where})"))
    if key_range is not None:
        low, high = key_range
        conditions += [sa.column(keys[0]) >= sa.literal(int(low)), sa.column(keys[0]) < sa.literal(int(high))]
    return conditions


def _ordered(side: Side, key: str) -> Any:
    column = sa.column(key)
    if side.key_kind(key) == "str":
        # Text keys sort by code point on both sides, whatever the database's default collation.
        if side.dialect == "postgresql":
            return column.collate("C")
        if side.dialect == "mssql":
            return column.collate("Latin1_General_BIN2")
    return column


def select_sql(side: Side, keys: list[str], columns: list[str], where: str | None,
               key_range: tuple[int, int] | None = None) -> str:
    """SELECT the key and compared columns, sorted by key (code-point order for text keys)."""
    statement = (sa.select(*(sa.column(c) for c in dict.fromkeys(keys + columns)))
                 .select_from(side.table_clause(keys + columns))
                 .where(*_conditions(side, keys, where, key_range))
                 .order_by(*(_ordered(side, k) for k in keys)))
    return side.compile(statement)


def count_sql(side: Side, keys: list[str], where: str | None) -> str:
    """How many rows a reconciliation will read from this side."""
    statement = sa.select(sa.func.count()).select_from(side.table_clause(keys)).where(
        *_conditions(side, keys, where, None))
    return side.compile(statement)


def bounds_sql(side: Side, key: str, where: str | None) -> str:
    """The smallest and largest key, and the row count."""
    statement = sa.select(sa.func.min(sa.column(key)), sa.func.max(sa.column(key)), sa.func.count()).select_from(
        side.table_clause([key])).where(*_conditions(side, [key], where, None))
    return side.compile(statement)


def row_text(side: Side, columns: list[str]) -> Any:
    """One row as canonical text inside the database, injective: NULL, '' and separators never collide.

    Postgres writes a row value's text itself (record_out quotes empty strings and any value holding a
    separator, and leaves NULL empty); on SQL Server each value is length-prefixed and NULL is '-'.
    """
    if side.dialect != "mssql":
        return sa.cast(sa.func.row(*(sa.column(name) for name in columns)), sa.Text())
    from sqlalchemy.dialects.mssql import NVARCHAR

    parts: list[Any] = []
    for name in columns:
        column = sa.column(name)
        text = sa.cast(column, NVARCHAR("max"))  # CAST(… AS NVARCHAR) alone would cut at 30 characters
        # LEN ignores trailing spaces: measure the text with a '.' after it.
        parts += [sa.case((column.is_(None), "-"), else_=sa.func.concat(sa.func.len(text + "."), ":", text)), "|"]
    return sa.func.concat(*parts)


def _row_hash(side: Side, columns: list[str]) -> Any:
    text = row_text(side, columns)
    if side.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import BIT

        # 60 bits of the md5 as a bigint: Postgres sums bigints exactly (into numeric) without a cast per row.
        hexdigits = sa.literal("x").op("||")(sa.func.substr(sa.func.md5(text), 1, 15))
        return sa.cast(sa.cast(hexdigits, BIT(60)), sa.BigInteger)
    if side.dialect == "mssql":
        digest = sa.func.hashbytes("MD5", text)
        return sa.cast(sa.cast(sa.func.substring(digest, 1, 7), sa.BigInteger), sa.Numeric(38, 0))
    raise ConfigError(f"{side.name}: in-database checksums are not available on {side.dialect}",
                      hint="use method = \"stream\" for this table")


def checksum_sql(side: Side, keys: list[str], columns: list[str], where: str | None, low: int, high: int,
                 buckets: int) -> str:
    """Per bucket of the key range [low, high): row count and the sum of the rows' hashes, in one scan."""
    width = max(1, -(-(high - low) // buckets))
    key = sa.column(keys[0])
    bucket = ((sa.cast(key, sa.BigInteger) - sa.literal(int(low))) // sa.literal(int(width))).label("bucket")
    statement = (sa.select(bucket, sa.func.count().label("n"), sa.func.sum(_row_hash(side, keys + columns)).label("h"))
                 .select_from(side.table_clause(keys + columns))
                 .where(*_conditions(side, keys, where, (low, high)))
                 .group_by(bucket))
    return side.compile(statement)


def python_value(side: Side, column: str) -> Callable[[Any], Any]:
    """How a value read into Arrow becomes the value the database driver would have given (decimals as Decimal)."""
    if column in side.decimal_text:
        return lambda v: None if v is None else Decimal(v)
    return lambda v: v


def text_keys(array: pa.Array) -> pa.Array:
    """Key values as text, as str() writes them (tokens are made of them)."""
    return pc.cast(array, pa.string())
