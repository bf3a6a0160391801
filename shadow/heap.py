"""The proxy's heap and Python's cyclic garbage collector: what a full collection costs the caller.

Measured in the soak (500 commands/s on 2 cores): a full collection (generation 2) walked
every object of the imported modules, the route table, the pools and the sinks — some
180,000, none of which ever becomes garbage — 3 to 5 times a minute, and stopped the event
loop 50–230 ms each time. Those pauses were the caller's p99. `gc.freeze()` moves every
object alive at that moment to a permanent generation the collector no longer walks (the
objects are still freed by reference counting). It runs once the proxy has started, and
again after a warm-up, once the first requests have imported what they import lazily (the
Kafka producer, SQL dialects); what requests allocate is collected as before. The pauses
are measured per generation into a histogram (`shadow_proxy_gc_pause_seconds`).

The proxy's other threads (the Kafka producer's, the pair sink's, the registry heartbeat)
hold the GIL for up to the interpreter's switch interval, 5 ms by default, each time the
event loop wants it back; a request waits for that several times. At 1 ms the soak's caller
p99 fell from 17–19 ms to 12–14 ms, for 40 → 44 % of a core at 500 commands/s.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from typing import Any

__all__ = ["GcPauses", "freeze_after_warmup", "switch_interval", "SWITCH_INTERVAL_S", "WARMUP_SECONDS"]

WARMUP_SECONDS = 20.0
SWITCH_INTERVAL_S = 0.001


class GcPauses:
    """Times every collection into a histogram labelled by generation, while installed."""

    def __init__(self, histogram: Any) -> None:
        self._by_generation = [histogram.labels(str(g)) for g in range(3)]  # children looked up once
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)

    def install(self) -> "GcPauses":
        """Start timing collections (gc.callbacks)."""
        gc.callbacks.append(self._callback)
        return self

    def remove(self) -> None:
        """Stop timing collections."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


async def freeze_after_warmup(warmup: float = WARMUP_SECONDS) -> None:
    """Freeze the heap now (start-up done) and again after the warm-up (lazy imports of the first requests done)."""
    gc.freeze()
    await asyncio.sleep(warmup)
    gc.freeze()


def switch_interval(seconds: float = SWITCH_INTERVAL_S) -> float:
    """Set how long a thread may hold the GIL while another waits; returns the previous value, to restore."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    return previous
