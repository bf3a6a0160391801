"""The soak's load generator: an open loop at a fixed rate, in a process of its own.

Run by tests/bench/soak.py (so that its CPU is not the proxy's):
    python -m tests.bench.soak_load URL --rate 500 --minutes 30 --lead-in 15 [--upstream reference --config shadow.toml]
It prints one JSON line {"start": epoch} (when minute 1 begins, after the lead-in, which is
not counted), then one per measured minute: commands sent, answered (2xx/3xx), 4xx,
errors (5xx, transport errors, timeouts, unfinished), caller latency p50/p99/max in ms
(from the request's start to its whole answer), and how late the generator itself was on
its schedule (its own stalls would otherwise pass for the proxy's).

With --direct URL (the primary's own address) it also sends a control stream of the same
commands, --direct-rate per second, straight to the primary, and reports its p50/p99: the
same machine at the same moment without the proxy, so that a slower machine is told apart
from a slower proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

__all__ = ["generate", "command_requests"]


def command_requests(upstream: str, config: Path | None, rate: int,
                     stream: str = "S") -> Iterator[tuple[str, str, bytes, dict[str, str]]]:
    """(method, path, body, headers) forever. The reference pair gets a realistic trace of one minute's
    commands, repeated with fresh load ids and dispatch tokens each cycle; the small upstreams one assign.
    `stream` (one capital letter) starts every load id, so that two streams never touch the same load."""
    if upstream == "bench":
        i = 0
        while True:
            i += 1
            yield "POST", f"/loads/{stream}-{i}/assign", b'{"zone": "chi"}', {"Content-Type": "application/json"}
    import orjson

    assert config is not None, "--upstream reference needs --config"
    from adapters.http import fill_path
    from shadow.config import load_config
    from shadow.demo.trace import generate_trace

    routes = {route.command: route for route in load_config(config).routes}
    base = []
    for command in generate_trace(rate * 60, seed=7):
        route = routes[command.kind]
        base.append((route.method, fill_path(route.path, command, route.params), orjson.dumps(command.payload),
                     command.token or ""))
    cycle = 0
    while True:
        prefix, mark = f"L{stream}{cycle:03d}-", f"{ord(stream):02x}{cycle:06x}"
        for method, path, body, token in base:
            yield (method, path.replace("/L-", "/" + prefix), body.replace(b'"L-', b'"' + prefix.encode()),
                   {"Content-Type": "application/json", "X-Dispatch-Token": f"{mark}{token[8:]}"})
        cycle += 1


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 2 else float("nan")


@dataclass
class _Minute:
    """What the generator saw of one measured minute."""

    sent: int = 0
    pending: int = 0
    late_ms: float = 0.0
    latencies: array = field(default_factory=lambda: array("d"))  # one object, not 30,000 for the collector to walk
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "client_errors": 0, "errors": 0})


async def generate(url: str, rate: int, minutes: int, lead_in: float, upstream: str,
                   config: Path | None, direct: str | None = None, direct_rate: int = 50) -> None:
    """Open loop at `rate`/s: a JSON line {"start": epoch} first, then one line per minute of the measured run."""
    import aiohttp

    source = command_requests(upstream, config, rate)
    per_minute, lead = rate * 60, int(rate * lead_in)
    measured: dict[int, _Minute] = {}
    control: dict[int, array] = {}  # minute → latencies of the direct stream
    running: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks
    gc.freeze()  # the trace and the imports: the collector need not walk them again and again

    def emit(line: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    async def send(base: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[str, float]:
        """One request and its whole answer: its kind (ok, client_errors, errors) and latency in ms."""
        started = time.perf_counter()
        try:
            async with session.request(method, base + path, data=body, headers=headers) as resp:
                await resp.read()
                kind = "ok" if resp.status < 400 else "client_errors" if resp.status < 500 else "errors"
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
            kind = "errors"
        return kind, (time.perf_counter() - started) * 1000

    def spawn(request: Any) -> None:
        task = asyncio.create_task(request)
        running.add(task)
        task.add_done_callback(running.discard)

    async def one(minute: _Minute | None, *request: Any) -> None:
        kind, ms = await send(url, *request)
        if minute is not None:
            minute.latencies.append(ms)
            minute.counts[kind] += 1
            minute.pending -= 1

    async def report(number: int) -> None:
        minute = measured[number]
        deadline = time.monotonic() + 15  # the client's timeout is 10 s
        while minute.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        values = list(minute.latencies)
        counts = {**minute.counts, "errors": minute.counts["errors"] + minute.pending}  # unfinished ones too
        direct_values = list(control.pop(number, ()))
        emit({"minute": number + 1, "sent": minute.sent, **counts, "unfinished": minute.pending,
              "p50": _pct(values, 50), "p99": _pct(values, 99), "max": max(values, default=float("nan")),
              "late_ms": minute.late_ms, **({"direct_p50": _pct(direct_values, 50), "direct_p99": _pct(direct_values, 99),
                                            "direct_sent": len(direct_values)} if direct else {})})
        del measured[number]

    async def timed(latencies: array, *request: Any) -> None:
        latencies.append((await send(direct, *request))[1])  # the control stream only measures the machine

    async def control_stream(begin: float) -> None:
        """The same commands straight to the primary, on their own schedule; filed by the minute they start in."""
        requests = command_requests(upstream, config, direct_rate, stream="D")
        for i in range(int(direct_rate * (lead_in + 60 * minutes))):
            delay = begin + i / direct_rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            number = int((loop.time() - begin - lead_in) // 60)
            if 0 <= number < minutes:
                spawn(timed(control.setdefault(number, array("d")), *next(requests)))

    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        loop = asyncio.get_running_loop()
        begin, epoch = loop.time(), time.time()
        emit({"start": epoch + lead_in})
        reports = [asyncio.create_task(control_stream(begin))] if direct else []
        for i in range(lead + per_minute * minutes):
            due = begin + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            minute = None
            if i >= lead:
                number = (i - lead) // per_minute
                minute = measured.setdefault(number, _Minute())
                minute.sent += 1
                minute.pending += 1
                minute.late_ms = max(minute.late_ms, (loop.time() - due) * 1000)
            spawn(one(minute, *next(source)))
            if i >= lead and (i - lead + 1) % per_minute == 0:
                reports.append(asyncio.create_task(report((i - lead) // per_minute)))
        await asyncio.gather(*reports)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url", help="where to send, e.g. http://127.0.0.1:8080")
    parser.add_argument("--rate", type=int, default=500, help="commands/s")
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--lead-in", type=float, default=15.0, help="seconds of load before minute 1, not counted")
    parser.add_argument("--upstream", choices=("bench", "reference"), default="bench",
                        help="what the commands are: one assign (bench), or the reference pair's trace")
    parser.add_argument("--config", type=Path, help="the soak's shadow.toml (its routes; --upstream reference)")
    parser.add_argument("--direct", help="the primary's own URL: a control stream straight to it, without the proxy")
    parser.add_argument("--direct-rate", type=int, default=50, help="commands/s of the control stream")
    args = parser.parse_args(argv)
    asyncio.run(generate(args.url, args.rate, args.minutes, args.lead_in, args.upstream, args.config, args.direct,
                         args.direct_rate))


if __name__ == "__main__":
    main()
