"""Cutover: how fast a flip reaches three proxies, and the worst unavailability when the new engine dies after one.

Runs the reference dispatch pair and three `shadow proxy` processes on 127.0.0.1 (as the
integration tests do), then:
  1. flips a zone between shadow and reverse N times (two phases: hold, then the new mode)
     and prints the time until all three proxies ran the new version, p50 and max;
  2. RUNS times: traffic at about 200 commands/s, a flip to reverse, the new engine killed
     one second later; prints every unavailability window the guards measured and the worst,
     beside the 30 s budget (target: worst <= 10 s).
Run: make bench (or python -m tests.bench.bench_cutover [FLIPS] [RUNS]).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from cutover.controller import Controller
from rules.catalogue import open_catalogue
from shadow import audit
from shadow.config import load_config
from shadow.demo.run import reference_processes, stop_processes
from tests.integration.test_cutover import TOKEN, ZONE, kill_after_flip, start_proxies, wait_registered, write_config

BUDGET_S = 30.0
TARGET_S = 10.0


def flips(count: int) -> list[float]:
    """Seconds from `execute` to all three proxies on the flipped version, for `count` flips."""
    with tempfile.TemporaryDirectory() as tmp, reference_processes(Path(tmp)) as [(legacy, _l), (new, _n)]:
        workdir = Path(tmp)
        config = write_config(workdir, legacy, new)
        proxies, _urls = start_proxies(workdir, config)
        try:
            wait_registered(config, 3)
            catalogue = open_catalogue(load_config(config).store.url.reveal())
            controller = Controller(config, catalogue, actor="bench", token=TOKEN)
            seconds = []
            for n in range(count):
                plan = controller.plan(ZONE, "reverse" if n % 2 == 0 else "shadow")
                result = controller.execute(plan.id, force=True, reason="bench", wait_s=10)
                assert not result.reverted and len(result.proxies) == 3, result
                seconds.append(result.propagation_s)
            catalogue.close()
            return seconds
        finally:
            stop_processes(proxies)


def kill_run() -> list[dict[str, Any]]:
    """One run of the kill test; the guard windows it recorded for the zone."""
    with tempfile.TemporaryDirectory() as tmp:
        config, results = kill_after_flip(Path(tmp))
        errors = [r for r in results if not isinstance(r["status"], int) or r["status"] >= 500]
        catalogue = open_catalogue(load_config(config).store.url.reveal())
        try:
            windows = [e.detail for e in audit.entries(catalogue.engine, subject=f"zone:{ZONE}",
                                                       action="guard.window")]
        finally:
            catalogue.close()
    for window in windows:
        window["caller_errors"] = len(errors)
    return windows


def main(count: int = 20, runs: int = 5) -> None:
    seconds = flips(count)
    print(f"flip propagation to 3 proxies over {count} flips (hold, then the new mode; SQLite store, file watch "
          f"every 0.2 s): p50 {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s   (target: within 1 s)")
    worst_per_run = []
    for run in range(runs):
        windows = kill_run()
        worst = max((w["seconds"] for w in windows), default=float("nan"))
        worst_per_run.append(worst)
        held = sum(w["held"] for w in windows)
        errors = windows[0]["caller_errors"] if windows else "?"
        print(f"  kill run {run + 1}: {len(windows)} window(s), worst {worst:.2f} s, {held} command(s) held, "
              f"{errors} caller error(s)")
    worst = max(worst_per_run)
    print(f"worst unavailability over {runs} kill runs (guard trip_after_s = 3): {worst:.2f} s   "
          f"budget {BUDGET_S:.0f} s ({worst / BUDGET_S:.0%} of it), target <= {TARGET_S:.0f} s: "
          f"{'met' if worst <= TARGET_S else 'NOT met'}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
