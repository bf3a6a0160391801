"""Comparator workers: pairs from a Kafka topic into the catalogue, as one consumer group.

N workers share the topic's partitions. Each batch is compared and stored, and
only then are its offsets committed; the store is an upsert on the dispatch
token, so a worker killed mid-batch loses nothing (its batch is read again by
whoever takes the partition over) and counts nothing twice. A record that
cannot be compared goes to `<topic>.retry` with its attempt count; after five
attempts it goes to `<topic>.dead`, and never stops the stream.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from adapters.kafka import ensure_topics, read_pair_message
from rules.catalogue import Catalogue
from rules.compare import Comparator, PairResult
from rules.normalise import Normaliser
from rules.rulefile import load_rules
from shadow.metrics import WorkerMetrics

__all__ = ["WorkerStats", "run_comparator_worker", "MAX_ATTEMPTS", "retry_topic", "dead_topic"]

log = logging.getLogger("shadow.workers")
MAX_ATTEMPTS = 5
# Groups join in about 3 s with these (23 s with kafka-python's defaults).
GROUP_TIMEOUTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "max_poll_interval_ms": 10000}
# An offset commit waits at most this long (kafka-python's default is its 30 s request timeout): well inside
# max_poll_interval_ms, so a broker away for a moment does not also cost the worker its place in the group.
COMMIT_TIMEOUT_S = 5.0


def retry_topic(topic: str) -> str:
    """Where records that failed wait for another attempt."""
    return f"{topic}.retry"


def dead_topic(topic: str) -> str:
    """Where records go after MAX_ATTEMPTS failed attempts."""
    return f"{topic}.dead"


@dataclass
class WorkerStats:
    """What one worker did."""

    records: int = 0
    stored: int = 0
    retried: int = 0
    dead: int = 0
    batches: int = 0


def _attempts(headers: list[tuple[str, bytes]] | None) -> int:
    for key, value in headers or []:
        if key == "attempts":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def run_comparator_worker(bootstrap: str, topic: str, group: str, catalogue: Catalogue, *,
                          rules_folder: Path | None = None, batch: int = 500, idle_exit: float | None = None,
                          first_record_within: float = 30.0, max_seconds: float | None = None,
                          stop: threading.Event | None = None,
                          on_batch: Callable[[WorkerStats], None] | None = None,
                          metrics: WorkerMetrics | None = None,
                          commit_timeout: float = COMMIT_TIMEOUT_S) -> WorkerStats:
    """Consume pairs (and retries) as member of `group` until stopped, or `max_seconds`, or — with
    `idle_exit` — idle that long after a record (a group may take a while to hand out partitions:
    the first record may take up to `first_record_within` seconds). `metrics` are counted per batch
    (serve their registry with `shadow.metrics.serve_metrics`). An offset commit that takes over
    `commit_timeout` seconds is logged and left to the next batch's."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError

    ensure_topics(bootstrap, {topic: 4, retry_topic(topic): 1, dead_topic(topic): 1})
    rules = load_rules(rules_folder)
    comparator = Comparator(Normaliser(rules.steps), keep_pairs=True)
    consumer = KafkaConsumer(topic, retry_topic(topic), bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=batch,
                             **GROUP_TIMEOUTS)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    stats = WorkerStats()
    if metrics is None:
        metrics = WorkerMetrics(topic, group=group, catalogue=catalogue.url)
    lags: dict[Any, int] = {}
    started = last_record = time.monotonic()
    try:
        while not (stop is not None and stop.is_set()):
            now = time.monotonic()
            if max_seconds is not None and now - started >= max_seconds:
                break
            if idle_exit is not None:
                waited = now - last_record
                if waited >= (idle_exit if stats.records else max(idle_exit, first_record_within)):
                    break
            polled = consumer.poll(timeout_ms=500)
            records = [record for batch_records in polled.values() for record in batch_records]
            if not records:
                continue
            last_record = time.monotonic()
            began = time.perf_counter()
            results: list[PairResult] = []
            for record in records:
                try:
                    results.append(comparator.compare(read_pair_message(record.value)))
                except Exception as exc:  # one bad record goes aside; the stream goes on
                    _set_aside(producer, topic, record, exc, stats, metrics)
            compared = time.perf_counter()
            metrics.compare_seconds.observe(compared - began)
            if results:
                ingest = catalogue.store(results)
                catalogue.apply_rules(rules)
                stats.stored += ingest.pairs
                metrics.matched.inc(ingest.matched)
                metrics.mismatched.inc(ingest.pairs - ingest.matched)
                metrics.replaced.inc(ingest.replaced)
                metrics.store_seconds.observe(time.perf_counter() - compared)
            stored = time.perf_counter()
            producer.flush()     # retries and dead letters are durable …
            try:
                consumer.commit(timeout_ms=int(commit_timeout * 1000))  # … before the offsets that would skip them
            except KafkaError as exc:  # the broker away for a moment must not end the worker: what it stored is
                # stored, and the next batch's commit covers these offsets too (a replay is an upsert, counted once)
                log.warning("offset commit failed (%s: %s); the next batch's commit covers it", type(exc).__name__, exc)
            metrics.commit_seconds.observe(time.perf_counter() - stored)
            stats.records += len(records)
            stats.batches += 1
            metrics.records.inc(len(records))
            metrics.batches.inc()
            _measure_lag(consumer, polled, lags, metrics, (topic, retry_topic(topic)))
            if on_batch is not None:
                on_batch(stats)
    finally:
        consumer.close()
        producer.close()
    return stats


def _measure_lag(consumer: Any, polled: dict[Any, list[Any]], lags: dict[Any, int], metrics: WorkerMetrics,
                 topics: tuple[str, ...]) -> None:
    """Records behind each partition's end: its high watermark (from the fetch responses: no request of its
    own) less the offset after the batch's last record; summed per consumed topic over the partitions held."""
    for partition, records in polled.items():
        end = consumer.highwater(partition)
        if end is not None and records:
            lags[partition] = max(0, end - (records[-1].offset + 1))
    held = consumer.assignment()
    for partition in [p for p in lags if p not in held]:  # revoked in a rebalance: another worker counts it
        del lags[partition]
    for name in topics:
        metrics.lag.labels(name).set(sum(n for p, n in lags.items() if p.topic == name))


def _set_aside(producer: Any, topic: str, record: Any, error: Exception, stats: WorkerStats,
               metrics: WorkerMetrics) -> None:
    attempts = _attempts(record.headers) + 1
    headers = [("attempts", str(attempts).encode()), ("error", f"{type(error).__name__}: {error}"[:500].encode()),
               ("from", f"{record.topic}:{record.partition}:{record.offset}".encode())]
    if attempts >= MAX_ATTEMPTS:
        producer.send(dead_topic(topic), key=record.key, value=record.value, headers=headers)
        stats.dead += 1
        metrics.dead.inc()
        log.warning("record %s:%d:%d failed %d times; sent to %s: %s", record.topic, record.partition, record.offset,
                    attempts, dead_topic(topic), error)
    else:
        producer.send(retry_topic(topic), key=record.key, value=record.value, headers=headers)
        stats.retried += 1
        metrics.retried.inc()
