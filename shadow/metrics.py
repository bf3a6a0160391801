"""The proxy's Prometheus metrics (`GET /-/metrics`), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shadow.model import Status

__all__ = ["ProxyMetrics"]

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
        # Children looked up once: labels() costs a few microseconds per call on the hot path.
        self.commands = self.requests.labels("command")
        self.unmatched = self.requests.labels("unmatched")
        self.by_status = {status: self.shadow_outcomes.labels(status.value) for status in Status}
