"""Catalogue queries on a million stored pairs: which quirks hit this load / command / zone.

Builds a SQLite catalogue of N pair results (1 % with differences, spread over
a few dozen quirks) through the same `Catalogue.store` the comparator uses,
then times the triage questions. Target: each well under 2 s.
Run: make bench (or python -m tests.bench.bench_catalogue [N]).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rules.catalogue import open_catalogue
from rules.compare import Difference, PairResult, fingerprint_id, quirk_id

T0 = datetime(2026, 11, 2, 11, 0, tzinfo=timezone.utc)
KINDS = ["create_load", "assign_load", "update_stop_eta", "reassign_load", "cancel_load"]
ZONES = ["chi", "nyc", "den", "lax"]
FIELDS = [f"field_{i}" for i in range(40)]


def results(n: int, seed: int = 3):
    rng = random.Random(seed)
    for i in range(n):
        kind = rng.choice(KINDS)
        differences = []
        if rng.random() < 0.01:
            for field in rng.sample(FIELDS, rng.randint(1, 3)):
                pattern = f"state.{field}"
                differences.append(Difference(
                    path=pattern, pattern=pattern, change="changed", transition="value", legacy=rng.randint(0, 9),
                    new=rng.randint(10, 19), fingerprint=fingerprint_id(kind, pattern, "changed", "value"),
                    quirk=quirk_id(field, "changed", "value")))
        yield PairResult(token=f"t{i:09d}", command=kind, zone=rng.choice(ZONES), entity=f"L-{i // 4:08d}",
                         received_at=T0 + timedelta(milliseconds=40 * i), matched=not differences,
                         legacy_status="ok", new_status="ok", legacy_latency_ms=3.0, new_latency_ms=2.5,
                         primary="legacy", differences=differences)


def timed(label: str, fn) -> float:
    started = time.perf_counter()
    found = fn()
    seconds = time.perf_counter() - started
    print(f"  {label:<44} {seconds * 1000:>9.1f} ms   ({found})")
    return seconds


def main(n: int = 1_000_000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        catalogue = open_catalogue(f"sqlite:///{Path(folder) / 'bench.db'}")
        started = time.perf_counter()
        stats = catalogue.store(results(n), batch_size=5000)
        build = time.perf_counter() - started
        print(f"catalogue: {n:,} pair results, {stats.differences:,} differences, stored in {build:.1f} s "
              f"({n / build:,.0f} pairs/s)")
        loaded = [r for r in results(n) if r.differences][len(FIELDS)]
        figures = {
            "load": timed(f"quirks that hit load {loaded.entity}", lambda: len(catalogue.quirks(entity=loaded.entity))),
            "command": timed("quirks that hit command assign_load", lambda: len(catalogue.quirks(command="assign_load"))),
            "zone": timed("quirks that hit zone chi", lambda: len(catalogue.quirks(zone="chi"))),
            "open": timed("open quirks, count", lambda: catalogue.count_quirks(verdict="open")),
            "show": timed("one quirk with 5 examples", lambda: len(catalogue.quirk(loaded.differences[0].quirk).examples)),
        }
        print(f"  slowest: {max(figures.values()) * 1000:.1f} ms (target: well under 2,000 ms)")
        catalogue.close()
        return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
