"""The triage page on a catalogue of 10 million pair results and 10,000 quirks: how fast the first page is served.

`shadow ui` runs as a real server (its own process, the command a product owner's admin would start) over the
synthetic catalogue of tests.bench.catalogue_data (generated once into /tmp/shadow-bench, shared with the
report bench). This process asks for pages over HTTP, one at a time, and times each from the request to the
last byte of the body: the first page cold (right after start), then 20 times warm, and the same for a
filtered list, a deep page, a sort by last seen, a free-text search and one quirk's page. Every page is
checked (its row count, the total it states) before any figure is printed.

Beside it, the peer: what the first page costs when computed the plain way, without the catalogue's roll-ups
(count each quirk's differences with a GROUP BY over the stored differences, and their hourly timeline by
joining the pair results), in SQLite, the same file.

Target (issue 9): the first page in under 300 ms.

Run: make bench (or python -m tests.bench.bench_ui [--pairs N] [--quirks N] [--requests N]).
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TARGET_MS = 300.0


def _get(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read().decode("utf-8")
        if response.status != 200:
            raise AssertionError(f"{url}: HTTP {response.status}")
    return (time.perf_counter() - started) * 1000, body


def _rows(body: str) -> int:
    return len(re.findall(r'<tr data-quirk="', body))


def _total(body: str) -> int:
    found = re.search(r'<span class="muted count">([\d,]+)</span>', body)
    if found is None:
        raise AssertionError("the list page states no total")
    return int(found.group(1).replace(",", ""))


def _peer_first_page(db: Path) -> tuple[float, int]:
    """The first page without roll-ups: the 50 most frequent quirks from the differences, and their timelines."""
    started = time.perf_counter()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        top = conn.execute("SELECT quirk, count(*) AS n, count(DISTINCT token) FROM differences GROUP BY quirk "
                           "ORDER BY n DESC, quirk LIMIT 50").fetchall()
        total = conn.execute("SELECT count(DISTINCT quirk) FROM differences").fetchone()[0]
        ids = [row[0] for row in top]
        marks = ",".join("?" * len(ids))
        conn.execute(f"SELECT d.quirk, strftime('%Y-%m-%d %H', p.received_at), count(*) FROM differences d "
                     f"JOIN pair_results p ON p.token = d.token WHERE d.quirk IN ({marks}) GROUP BY 1, 2",
                     ids).fetchall()
    return (time.perf_counter() - started) * 1000, total


def _ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values):6.1f} ms  max {max(values):6.1f} ms"


def run(pairs: int = 10_000_000, quirks: int = 10_000, requests: int = 20, folder: str = "/tmp/shadow-bench") -> dict:
    from shadow.demo.run import free_port, stop_processes
    from tests.servers import wait_http
    from tests.bench.catalogue_data import Spec, cached_catalogue

    started = time.perf_counter()
    db, facts, reused = cached_catalogue(Spec(pairs=pairs, quirks=quirks), folder)
    how = (f"reused {db} (generated earlier in {facts.seconds:.0f} s)" if reused
           else f"generated {db} in {time.perf_counter() - started:.0f} s")
    print(f"triage page bench: {facts.pairs:,} pair results, {facts.differences:,} differences in {facts.quirks:,} "
          f"quirks; {how}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="shadow-ui-bench-") as scratch:
        # An empty folder as the working directory, so no stray ./shadow.toml is picked up; read-only: no token.
        process = subprocess.Popen([sys.executable, "-m", "shadow", "ui", "--store", f"sqlite:///{db}", "--rules",
                                    str(Path(scratch) / "rules"), "--port", str(port)], cwd=scratch,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            ready = wait_http(url + "/static/triage.css", process, within=120)
            cold, body = _get(url + "/")
            if _rows(body) != min(50, facts.quirks) or _total(body) != facts.quirks:
                raise AssertionError(f"first page: {_rows(body)} rows, total {_total(body)}; want 50 of {facts.quirks}")
            top = re.search(r'<tr data-quirk="([0-9a-f]+)"', body).group(1)
            variants = {
                "first page (GET /)": "/",
                "filtered: zone + command kind": "/?zone=chi&command=create_load",
                "deep page (page 150)": "/?page=150",
                "sorted by last seen": "/?sort=last_seen",
                "free-text search": "/?q=weight_kg+rounding",
                "one quirk's page (the largest)": f"/quirks/{top}",
            }
            timings: dict[str, list[float]] = {}
            for name, path in variants.items():
                _get(url + path)  # one warm-up each
                timings[name] = []
                for _ in range(requests):
                    ms, page = _get(url + path)
                    timings[name].append(ms)
                if path.startswith("/?page="):
                    assert _rows(page) == 50, f"{path}: {_rows(page)} rows"
                elif path.startswith("/quirks/"):
                    assert top in page and "Examples" in page, path
                else:
                    assert _rows(page) > 0 and _total(page) <= facts.quirks, path
        finally:
            stop_processes([process])
    peer_ms, peer_total = _peer_first_page(db)
    if peer_total != facts.quirks:
        raise AssertionError(f"peer: {peer_total} quirks, want {facts.quirks}")

    print(f"\n`shadow ui` over {facts.pairs:,} stored pair results and {facts.quirks:,} quirks (SQLite, warm page "
          f"cache); {requests} requests each after one warm-up, one at a time, request to last byte; server ready "
          f"{ready:.1f} s after start")
    first = timings["first page (GET /)"]
    width = max(len(n) for n in variants)
    print(f"  {'first page, cold (first request)'.ljust(width)}  {cold:6.1f} ms")
    for name, values in timings.items():
        print(f"  {name.ljust(width)}  {_ms(values)}")
    print(f"  {'peer: first page without roll-ups'.ljust(width)}  {peer_ms:6.1f} ms  (GROUP BY over the differences"
          f" + their timeline joined from pair_results; SQL alone, no page)")
    met = max(first) < TARGET_MS and cold < TARGET_MS
    print(f"\n  target: first page < {TARGET_MS:.0f} ms — p50 {statistics.median(first):.1f} ms, max {max(first):.1f} ms, "
          f"cold {cold:.1f} ms: {'met' if met else 'NOT met'}")
    return {"cold_ms": cold, "timings": timings, "peer_ms": peer_ms, "met": met}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000_000, help="stored pair results (default 10,000,000)")
    parser.add_argument("--quirks", type=int, default=10_000, help="quirks they fall into (default 10,000)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page (default 20)")
    parser.add_argument("--folder", default="/tmp/shadow-bench", help="where the generated catalogue is kept")
    options = parser.parse_args()
    run(options.pairs, options.quirks, options.requests, options.folder)
