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

Anything else that stops the event loop shows as lateness of a timer: `StallWatch` runs one
every 50 ms and times how late it fires (`shadow_proxy_loop_lag_seconds`). When the loop has
not run it for `threshold`, a thread of its own logs where the loop's thread is, once per
stall, and how late its own timer was: late too, the whole process was held (the machine,
or a call that kept the GIL); on time, the loop alone was (a blocking call on it, or another
thread's Python holding the GIL in turns).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from typing import Any

__all__ = ["GcPauses", "StallWatch", "freeze_after_warmup", "switch_interval", "SWITCH_INTERVAL_S",
           "WARMUP_SECONDS"]

log = logging.getLogger("shadow.heap")

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


class StallWatch:
    """Times the event loop's lateness into a histogram; logs where the loop was when it stalled over `threshold`."""

    def __init__(self, histogram: Any, *, interval: float = 0.05, threshold: float = 0.2) -> None:
        self._histogram, self.interval, self.threshold = histogram, interval, threshold
        self._beat = 0.0  # time.monotonic() of the loop's last timer
        self._loop_thread = 0
        self._stop = threading.Event()
        self.stalls = 0  # stalls over the threshold the thread reported

    async def run(self) -> None:
        """The loop's side: a timer every `interval`, its lateness observed (until cancelled)."""
        loop = asyncio.get_running_loop()
        self._loop_thread, self._beat = threading.get_ident(), time.monotonic()
        watcher = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
        watcher.start()
        try:
            while True:
                due = loop.time() + self.interval
                await asyncio.sleep(self.interval)
                late = max(0.0, loop.time() - due)
                self._beat = time.monotonic()
                self._histogram.observe(late)
                if late >= self.threshold:
                    log.warning("event loop stalled: a %.0f ms timer ran %.0f ms late", self.interval * 1000, late * 1000)
        finally:
            self._stop.set()
            await asyncio.to_thread(watcher.join, 1)

    def _watch(self) -> None:
        reported = 0.0  # the beat already reported: once per stall
        due = time.monotonic() + self.interval
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            own_late, due = now - due, now + self.interval
            beat = self._beat
            if now - beat >= self.threshold + self.interval and beat != reported:
                reported = beat
                self.stalls += 1
                frame = sys._current_frames().get(self._loop_thread)
                where = "".join(traceback.format_stack(frame, limit=12)) if frame is not None else "(not running)\n"
                log.warning("event loop stalled for %.0f ms so far (this watch's own %.0f ms timer was %.0f ms "
                            "late: %s); the loop's thread is at:\n%s", (now - beat) * 1000, self.interval * 1000,
                            own_late * 1000, "the whole process was held: the machine, or a call that kept the GIL"
                            if own_late >= self.threshold else "the loop alone was held", where.rstrip())
