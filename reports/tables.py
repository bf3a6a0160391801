"""The catalogue as tables: pandas DataFrames for notebooks, Parquet/CSV/JSON Lines files for everything else.

Pair results and differences are streamed a chunk at a time (never the whole
table in memory) with the same scope as every other report format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa

from reports.query import Report, Scope, build_report
from rules.catalogue import Catalogue, open_catalogue
from rules.schema import differences, pair_results
from shadow.errors import InputError

__all__ = ["COLUMNS", "FORMATS", "frames", "export", "quirk_rows"]

FORMATS = ("parquet", "csv", "json")
_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    """One documented column of an exported table."""

    name: str
    type: pa.DataType
    doc: str


# The columns of each table, documented here once (the docs' report page is generated from this).
COLUMNS: dict[str, list[Column]] = {
    "pair_results": [
        Column("token", pa.string(), "dispatch token (the pair's identity)"),
        Column("command", pa.string(), "command kind"),
        Column("zone", pa.string(), "zone, when the command had one"),
        Column("entity", pa.string(), "the command's first natural key value, e.g. a load id"),
        Column("received_at", _TS, "when the command was received (UTC)"),
        Column("compared_at", _TS, "when the pair was compared (UTC)"),
        Column("matched", pa.bool_(), "true when the two outcomes were equal after normalisation"),
        Column("difference_count", pa.int32(), "field-level differences in the pair"),
        Column("legacy_status", pa.string(), "ok, error or timeout on legacy"),
        Column("new_status", pa.string(), "ok, error or timeout on the new engine"),
        Column("legacy_latency_ms", pa.float64(), "legacy's latency (ms)"),
        Column("new_latency_ms", pa.float64(), "the new engine's latency (ms)"),
        Column("primary_target", pa.string(), "which target answered the caller"),
    ],
    "differences": [
        Column("token", pa.string(), "dispatch token of the pair"),
        Column("command", pa.string(), "command kind"),
        Column("zone", pa.string(), "zone"),
        Column("received_at", _TS, "when the command was received (UTC)"),
        Column("quirk", pa.string(), "id of the quirk the difference belongs to"),
        Column("fingerprint", pa.string(), "fingerprint id (command kind + path + change + transition class)"),
        Column("path", pa.string(), "where in the outcome, e.g. state.stops[2].eta"),
        Column("legacy_value", pa.string(), "legacy's value, as JSON text"),
        Column("new_value", pa.string(), "the new engine's value, as JSON text"),
    ],
    "quirks": [
        Column("id", pa.string(), "quirk id"),
        Column("description", pa.string(), "the quirk in plain words"),
        Column("field", pa.string(), "the field it concerns"),
        Column("change", pa.string(), "changed, type, added, removed or order"),
        Column("transition", pa.string(), "transition class: how the values differ"),
        Column("verdict", pa.string(), "open, reproduce, retire or noise"),
        Column("owner", pa.string(), "who decided the verdict"),
        Column("note", pa.string(), "why"),
        Column("ticket", pa.string(), "tracker key"),
        Column("differences", pa.int64(), "differences in the report's scope"),
        Column("pairs", pa.int64(), "pairs in the report's scope"),
        Column("first_seen", _TS, "first occurrence ever (UTC)"),
        Column("last_seen", _TS, "last occurrence ever (UTC)"),
        Column("commands", pa.string(), "command kinds that showed it, comma-separated"),
        Column("zones", pa.string(), "zones it hit, comma-separated"),
    ],
}


def _schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type) for c in COLUMNS[table]])


def _pair_query(scope: Scope) -> sa.Select:
    return sa.select(*(pair_results.c[c.name] for c in COLUMNS["pair_results"])).where(
        *scope.where(pair_results)).order_by(pair_results.c.received_at, pair_results.c.token)


def _difference_query(scope: Scope) -> sa.Select:
    return (sa.select(differences.c.token, pair_results.c.command, pair_results.c.zone, pair_results.c.received_at,
                      differences.c.quirk, differences.c.fingerprint, differences.c.path, differences.c.legacy_value,
                      differences.c.new_value)
            .join(pair_results, pair_results.c.token == differences.c.token)
            .where(*scope.where(pair_results)).order_by(pair_results.c.received_at, differences.c.id))


def quirk_rows(report: Report) -> list[dict[str, Any]]:
    """The report's quirks as table rows (counts inside its scope)."""
    return [{"id": q.id, "description": q.description, "field": q.field, "change": q.change,
             "transition": q.transition, "verdict": q.verdict, "owner": q.owner, "note": q.note, "ticket": q.ticket,
             "differences": line.differences, "pairs": line.pairs, "first_seen": q.first_seen,
             "last_seen": q.last_seen, "commands": ",".join(q.commands), "zones": ",".join(sorted(q.zones))}
            for line in report.quirks for q in [line.quirk]]


def _batches(catalogue: Catalogue, query: sa.Select, table: str, chunk: int) -> Iterator[pa.RecordBatch]:
    names = [c.name for c in COLUMNS[table]]
    schema = _schema(table)
    with catalogue.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
        for rows in result.partitions(chunk):
            columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
            arrays = []
            for field, values in zip(schema, columns, strict=True):
                if pa.types.is_timestamp(field.type):
                    values = [None if v is None else pd.Timestamp(v, tz="UTC") for v in values]
                arrays.append(pa.array(values, type=field.type))
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def frames(source: str | Catalogue, scope: Scope | None = None, *, chunk: int = 50_000) -> dict[str, pd.DataFrame]:
    """`pair_results`, `differences` and `quirks` as DataFrames (columns: `COLUMNS`), for notebooks.

    `source` is a catalogue URL (e.g. "sqlite:///shadow.db") or an open Catalogue.
    """
    catalogue = open_catalogue(source) if isinstance(source, str) else source
    scope = scope or Scope()
    try:
        out = {}
        for table, query in (("pair_results", _pair_query(scope)), ("differences", _difference_query(scope))):
            batches = list(_batches(catalogue, query, table, chunk))
            out[table] = pa.Table.from_batches(batches, schema=_schema(table)).to_pandas()
        report = build_report(catalogue, scope, examples=0)
        out["quirks"] = pa.Table.from_pylist(quirk_rows(report), schema=_schema("quirks")).to_pandas()
        return out
    finally:
        if isinstance(source, str):
            catalogue.close()


def export(catalogue: Catalogue, report: Report, fmt: str, directory: Path, *, chunk: int = 50_000) -> list[Path]:
    """Write the three tables (and, for json, the report itself) into a folder; returns the files written."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} cannot be written to a folder", hint=f"use one of {', '.join(FORMATS)}")
    directory.mkdir(parents=True, exist_ok=True)
    suffix = {"parquet": "parquet", "csv": "csv", "json": "jsonl"}[fmt]
    written = []
    sources = {"pair_results": _batches(catalogue, _pair_query(report.scope), "pair_results", chunk),
               "differences": _batches(catalogue, _difference_query(report.scope), "differences", chunk),
               "quirks": iter(pa.Table.from_pylist(quirk_rows(report), schema=_schema("quirks")).to_batches())}
    for table, batches in sources.items():
        path = directory / f"{table}.{suffix}"
        _write(path, fmt, _schema(table), batches)
        written.append(path)
    if fmt == "json":
        path = directory / "report.json"
        path.write_text(json.dumps(report.to_dict(), indent=2, default=str, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def _write(path: Path, fmt: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
    if fmt == "parquet":
        with pq.ParquetWriter(path, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        return
    if fmt == "csv":
        with pa_csv.CSVWriter(path, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        return
    with path.open("w", encoding="utf-8") as out:
        for batch in batches:
            for row in batch.to_pylist():
                out.write(json.dumps(row, default=_iso, ensure_ascii=False) + "\n")


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
