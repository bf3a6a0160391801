"""Prometheus metrics: the proxy's (`GET /-/metrics`) and a comparator worker's (`GET /metrics`), each in a
registry of its own; and the Grafana dashboard that charts them (docs/reference/metrics.md lists them all).

No metric carries an instance label of ours: Prometheus adds `instance` (the scraped HOST:PORT) and `job` to
every sample, and an `instance` label in the exposition would clash with it.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from shadow.errors import ShadowError
from shadow.model import Status

__all__ = ["ProxyMetrics", "WorkerMetrics", "serve_metrics", "grafana_dashboard"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProxyMetrics:
    """What `GET /-/metrics` shows, in a registry of the proxy's own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("shadow_proxy_requests", "Requests received, by what the route table made of them",
                                ["kind"], registry=registry)
        self.mirrored = Counter("shadow_proxy_mirrored", "Commands sent to the shadow target", registry=registry)
        self.dropped = Counter("shadow_proxy_mirror_dropped", "Mirrors not sent, by reason", ["reason"],
                               registry=registry)
        self.sampled_out = Counter("shadow_proxy_mirror_sampled_out", "Commands not mirrored by a route's sample rate",
                                   registry=registry)
        self.shadow_outcomes = Counter("shadow_proxy_shadow_outcomes", "Shadow answers by status", ["status"],
                                       registry=registry)
        self.primary_latency = Histogram("shadow_proxy_primary_latency_seconds", "Primary round trip",
                                         registry=registry, buckets=_BUCKETS)
        self.shadow_latency = Histogram("shadow_proxy_shadow_latency_seconds", "Shadow round trip",
                                        registry=registry, buckets=_BUCKETS)
        self.compared = Counter("shadow_proxy_pairs_compared", "Pairs compared inline, by result", ["result"],
                                registry=registry)
        self.match_rate = Gauge("shadow_proxy_match_rate", "Matched / compared pairs since start", registry=registry)
        self.too_large = Counter("shadow_proxy_body_too_large", "Requests answered 413", registry=registry)
        self.parse_errors = Counter("shadow_proxy_parse_errors", "Command bodies that were not JSON", registry=registry)
        self.primary_errors = Counter("shadow_proxy_primary_unreachable", "Requests answered 502/504 by the proxy",
                                      registry=registry)
        self.table_version = Gauge("shadow_proxy_route_table_version", "Route-table version number in force",
                                   registry=registry)
        self.held = Counter("shadow_proxy_guard_held", "Commands held by the guard, by how the hold ended",
                            ["resolution"], registry=registry)
        self.trips = Counter("shadow_proxy_guard_trips", "Zones the guard switched back to legacy", registry=registry)
        self.flip_held = Counter("shadow_proxy_flip_held", "Commands held while a flip of their zone propagated",
                                 registry=registry)
        self.unavailable = Histogram("shadow_proxy_unavailability_seconds", "Unavailability windows (first failed or "
                                     "held command to first success)", registry=registry,
                                     buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60))
        self.queue_depth = Gauge("shadow_proxy_mirror_queue_depth", "Mirrors waiting", registry=registry)
        self.pairs_buffered = Gauge("shadow_proxy_pairs_buffered", "Pairs waiting in memory for the store or broker",
                                    registry=registry)
        self.pairs_spilled = Gauge("shadow_proxy_pairs_spilled_total", "Pairs written to the spill file while the "
                                   "store or broker was down", registry=registry)
        self.pairs_drained = Gauge("shadow_proxy_pairs_drained_total", "Pairs delivered from the spill file",
                                   registry=registry)
        self.pairs_dropped = Gauge("shadow_proxy_pairs_dropped_total", "Pairs neither delivered nor spilled, by reason",
                                   ["reason"], registry=registry)
        self.sink_degraded = Gauge("shadow_proxy_sink_degraded", "1 while pairs go to the spill file",
                                   registry=registry)
        self.gc_pause = Histogram("shadow_proxy_gc_pause_seconds", "Pauses of Python's cyclic garbage collector, by "
                                  "generation (2: a full collection)", ["generation"],
                                  buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
                                  registry=registry)
        self.loop_lag = Histogram("shadow_proxy_loop_lag_seconds", "How late the event loop ran a 50 ms timer: "
                                  "anything that kept it from the callers", buckets=(0.001, 0.002, 0.005, 0.01, 0.02,
                                                                                     0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                                  registry=registry)
        # Children looked up once: labels() costs a few microseconds per call on the hot path.
        self.commands = self.requests.labels("command")
        self.unmatched = self.requests.labels("unmatched")
        self.by_status = {status: self.shadow_outcomes.labels(status.value) for status in Status}


_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WorkerMetrics:
    """What a comparator worker's `/metrics` shows (`shadow compare --from-kafka TOPIC --metrics-listen …`).

    Every series carries `topic`: the pairs topic the worker consumes (the retry topic's own name on
    `shadow_worker_lag`). Counted per batch, never per pair: the per-pair path stays as it was.
    """

    def __init__(self, topic: str, *, group: str = "", catalogue: str = "") -> None:
        self.registry = registry = CollectorRegistry()
        self.topic = topic
        info = Info("shadow_worker", "The worker's pairs topic, consumer group and catalogue (password masked)",
                    registry=registry)
        info.info({"topic": topic, "group": group, "catalogue": catalogue})
        self.records = Counter("shadow_worker_records", "Records consumed from the pairs topic and its retry topic",
                               ["topic"], registry=registry).labels(topic)
        stored = Counter("shadow_worker_pairs_stored", "Pair results written to the catalogue, by result "
                         "(match: no difference after the rules)", ["topic", "result"], registry=registry)
        self.matched, self.mismatched = stored.labels(topic, "match"), stored.labels(topic, "mismatch")
        self.replaced = Counter("shadow_worker_pairs_replaced", "Stored pairs that were in the catalogue already "
                                "(a batch read again after a crash or a rebalance)", ["topic"],
                                registry=registry).labels(topic)
        self.retried = Counter("shadow_worker_retried", "Records that could not be compared, sent to <topic>.retry",
                               ["topic"], registry=registry).labels(topic)
        self.dead = Counter("shadow_worker_dead_lettered", "Records sent to <topic>.dead after their last attempt",
                            ["topic"], registry=registry).labels(topic)
        self.batches = Counter("shadow_worker_batches", "Batches compared, stored and committed", ["topic"],
                               registry=registry).labels(topic)
        self.compare_seconds = Histogram("shadow_worker_compare_seconds", "Comparing one batch", ["topic"],
                                         registry=registry, buckets=_BATCH_BUCKETS).labels(topic)
        self.store_seconds = Histogram("shadow_worker_store_seconds", "Writing one batch to the catalogue (results, "
                                       "roll-ups, verdicts)", ["topic"], registry=registry,
                                       buckets=_BATCH_BUCKETS).labels(topic)
        self.commit_seconds = Histogram("shadow_worker_commit_seconds", "Flushing one batch's retries and dead "
                                        "letters, then committing its offsets", ["topic"], registry=registry,
                                        buckets=_BATCH_BUCKETS).labels(topic)
        self.lag = Gauge("shadow_worker_lag", "Records behind the end of the partitions this worker holds, per "
                         "consumed topic (pairs and retry), as of its last batch", ["topic"], registry=registry)


def serve_metrics(registry: CollectorRegistry, listen: str) -> tuple[str, Callable[[], None]]:
    """Serve `registry` at http://HOST:PORT/metrics from a thread; the address served and a function that stops it.

    `listen` is HOST:PORT, or PORT alone for 127.0.0.1 (this machine only); port 0 picks a free one."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise ShadowError(f"metrics address {listen!r} is not [HOST:]PORT", hint="e.g. --metrics-listen 127.0.0.1:9464")
    try:
        server, thread = start_http_server(int(port), addr=host, registry=registry)
    except OSError as exc:
        raise ShadowError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                          hint="pick another port, or stop what listens there") from None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return f"{host}:{server.server_port}", stop


def grafana_dashboard() -> dict[str, Any]:
    """The Grafana dashboard for these metrics (shadow/grafana/dashboard.json), ready to import."""
    return json.loads(files("shadow").joinpath("grafana/dashboard.json").read_text(encoding="utf-8"))
