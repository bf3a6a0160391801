"""The proxy's stall watch: the event loop's lateness in a histogram, and where the loop was when it stalled."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from prometheus_client import CollectorRegistry, Histogram

from shadow.heap import StallWatch


def _histogram() -> Histogram:
    return Histogram("lag_seconds", "test", buckets=(0.01, 0.1, 0.25, 1.0), registry=CollectorRegistry())


def _counts(histogram: Histogram) -> dict[str, float]:
    return {sample.labels.get("le", sample.name): sample.value for metric in histogram.collect()
            for sample in metric.samples if sample.name.endswith(("_bucket", "_count"))}


def _blocking_call_on_the_loop() -> None:
    time.sleep(0.45)


def _run(scenario, watch: StallWatch) -> None:
    async def main() -> None:
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.2)
        await scenario()
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_a_blocked_loop_is_timed_and_its_place_logged_once(caplog) -> None:
    histogram = _histogram()
    watch = StallWatch(histogram, interval=0.02, threshold=0.1)

    async def stall() -> None:
        _blocking_call_on_the_loop()

    with caplog.at_level(logging.WARNING, logger="shadow.heap"):
        _run(stall, watch)
    counts = _counts(histogram)
    assert counts["lag_seconds_count"] >= 10  # a timer every 20 ms for ~0.85 s, less the stall
    assert counts["lag_seconds_count"] - counts["0.25"] >= 1  # a timer ran over 250 ms late: the stall
    assert watch.stalls == 1  # reported once, not once per watch tick
    where = [r.getMessage() for r in caplog.records if "so far" in r.getMessage()]
    assert len(where) == 1 and "_blocking_call_on_the_loop" in where[0] and "held" in where[0]
    assert any("ran" in r.getMessage() and "late" in r.getMessage() for r in caplog.records)
    assert not any(t.name == "stall-watch" for t in threading.enumerate())  # stopped with the task


def test_a_loop_that_keeps_up_logs_nothing(caplog) -> None:
    histogram = _histogram()
    watch = StallWatch(histogram, interval=0.02, threshold=0.1)

    async def busy_but_yielding() -> None:
        for _ in range(20):
            time.sleep(0.005)  # short pieces of work, handing the loop back in between
            await asyncio.sleep(0)

    with caplog.at_level(logging.WARNING, logger="shadow.heap"):
        _run(busy_but_yielding, watch)
    counts = _counts(histogram)
    assert counts["lag_seconds_count"] >= 10 and counts["0.25"] == counts["lag_seconds_count"]
    assert watch.stalls == 0 and not caplog.records
