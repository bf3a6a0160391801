"""Cutover with three real proxies in front of the reference dispatch pair, under traffic spread over zones.

Starts REAL processes on free 127.0.0.1 ports: the reference legacy (SQLite) and new engine
(`shadow demo serve`), and three `shadow proxy` processes sharing one shadow.toml and one
SQLite catalogue (registry, audit log). Traffic is about 200 commands/s for a bounded time;
every test stops everything it started. Measured figures are printed, not asserted against
targets (`make bench` measures them); the assertions are about what was lost or doubled.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cutover import registry
from cutover.controller import Controller
from rules.catalogue import open_catalogue
from shadow import audit
from shadow.config import load_config
from shadow.demo.run import demo_config_text, reference_processes, stop_processes
from shadow.demo.trace import generate_trace
from shadow.errors import ShadowError
from tests.integration import servers

pytestmark = pytest.mark.integration
TOKEN = "release:cutover-test-token"
ZONE = "chi"


def write_config(workdir: Path, legacy: str, new: str) -> Path:
    text = demo_config_text(int(legacy.rsplit(":", 1)[1]), int(new.rsplit(":", 1)[1]))
    text += """
[proxy]
reload_seconds = 0.2

[cutover.guard]
trip_after_s = 3.0
hold_max_s = 10.0
probe_interval_s = 0.1
"""
    path = workdir / "shadow.toml"
    path.write_text(text)
    return path


def start_proxies(workdir: Path, config: Path, count: int = 3) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    return servers.start_proxies(workdir, config, count, token=TOKEN, own_pairs=True)


def wait_registered(config: Path, count: int) -> None:
    catalogue = open_catalogue(load_config(config).store.url.reveal())
    try:
        for _ in range(100):
            if len([p for p in registry.registered(catalogue.engine) if p.state == "live"]) >= count:
                return
            time.sleep(0.05)
        raise AssertionError("the proxies did not register")
    finally:
        catalogue.close()


async def traffic(urls: list[str], loads: int, rate: float) -> list[dict[str, Any]]:
    """Per load: create it, then assign it, through the proxy its id hashes to; about `rate` commands/s."""
    trace = generate_trace(loads * 6, seed=11)
    creates = [c for c in trace if c.kind == "create_load"][:loads]
    results: list[dict[str, Any]] = []

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        create = creates[n]
        load = create.keys["load_id"]
        url = urls[hash(load) % len(urls)]
        for kind, path, body in (("create_load", "/loads", create.payload),
                                 ("assign_load", f"/loads/{load}/assign",
                                  {"requested_at": create.payload["requested_at"]})):
            token = f"{load}-{kind}"
            started = time.monotonic()
            try:
                async with session.post(url + path, json=body, headers={"X-Dispatch-Token": token}) as resp:
                    status = resp.status
            except aiohttp.ClientError as exc:
                status = f"client error {type(exc).__name__}"
            results.append({"token": token, "load": load, "kind": kind, "zone": create.payload["zone"].lower(),
                            "status": status, "seconds": time.monotonic() - started})

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        tasks = []
        for n in range(loads):
            tasks.append(asyncio.create_task(one(session, n)))
            await asyncio.sleep(2 / rate)  # two commands per load
        await asyncio.gather(*tasks)
    return results


def assert_no_secret_logged(workdir: Path) -> None:
    """Neither the admin token nor its secret part is in any proxy's log."""
    secret = TOKEN.split(":", 1)[1]
    logs = sorted(workdir.glob("proxy-*.log"))
    assert len(logs) == 3 and any(log.stat().st_size for log in logs)  # they logged the flips: the check has teeth
    for log in logs:
        text = log.read_text(errors="replace")
        assert TOKEN not in text and secret not in text, log


def legacy_counts(workdir: Path) -> tuple[Counter[str], Counter[str]]:
    with sqlite3.connect(workdir / "legacy.sqlite") as db:
        loads = Counter(load for (load,) in db.execute("SELECT load_id FROM loads"))
        assignments = Counter(load for (load,) in db.execute("SELECT load_id FROM assignments"))
    return loads, assignments


def new_has(new_url: str, load: str) -> bool:
    try:
        with urllib.request.urlopen(f"{new_url}/loads/{load}", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def flip_in(seconds: float, config: Path, out: dict[str, Any]) -> threading.Thread:
    """Flip ZONE to reverse after `seconds`, in a thread (the controller is synchronous)."""
    def run() -> None:
        time.sleep(seconds)
        catalogue = open_catalogue(load_config(config).store.url.reveal())
        try:
            controller = Controller(config, catalogue, actor="release", token=TOKEN)
            plan = controller.plan(ZONE, "reverse")
            out["flipped_at"] = time.monotonic()
            out["execution"] = controller.execute(plan.id, force=True, reason="integration test: gates have no "
                                                                            "history yet", wait_s=10)
        finally:
            catalogue.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_flip_to_reverse_reaches_all_three_proxies_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    with reference_processes(tmp_path) as [(legacy, _lp), (new, _np)]:
        config = write_config(tmp_path, legacy, new)
        proxies, urls = start_proxies(tmp_path, config)
        try:
            wait_registered(config, 3)
            flip: dict[str, Any] = {}
            thread = flip_in(2.0, config, flip)
            results = asyncio.run(traffic(urls, loads=500, rate=200))
            thread.join()
        finally:
            stop_processes(proxies)  # SIGTERM: each drains its mirrors first
        assert_no_secret_logged(tmp_path)
        execution = flip["execution"]
        print(f"\nflip to reverse: version {execution.version} on {len(execution.proxies)} proxies in "
              f"{execution.propagation_s:.2f} s")
        assert not execution.reverted and len(execution.proxies) == 3
        assert set(execution.proxies.values()) == {execution.version}
        statuses = Counter(r["status"] for r in results)
        assert all(isinstance(s, int) and s < 500 for s in statuses), statuses  # zero caller errors
        tokens = Counter(r["token"] for r in results)
        assert len(results) == 1000 and set(tokens.values()) == {1}
        loads, assignments = legacy_counts(tmp_path)
        created = {r["load"] for r in results if r["kind"] == "create_load" and r["status"] in (200, 201)}
        assigned = {r["load"] for r in results if r["kind"] == "assign_load" and r["status"] == 200}
        assert created <= set(loads) and set(loads.values()) == {1}            # every load once in legacy
        assert all(assignments[load] == 1 for load in assigned)               # ...assigned exactly once
        assert all(n == 1 for n in assignments.values())
        assert all(new_has(new, load) for load in created)                    # and present in the new engine
        catalogue = open_catalogue(load_config(config).store.url.reveal())
        try:  # (d) a zone the catalogue has no pair for: its gates fail, execute refuses, the file stays
            controller = Controller(config, catalogue, actor="release", token=TOKEN)
            plan = controller.plan("sea", "reverse")
            before = config.read_text()
            with pytest.raises(ShadowError, match="gate\\(s\\) fail"):
                controller.execute(plan.id)
            assert config.read_text() == before and not plan.gates_pass
        finally:
            catalogue.close()
        reversed_zone = [r for r in results if r["zone"] == ZONE and r["kind"] == "create_load"]
        assert reversed_zone and {r["status"] for r in reversed_zone} <= {200, 201}
        with urllib.request.urlopen(f"{new}/loads/{reversed_zone[-1]['load']}") as resp:
            assert json.loads(resp.read())["load_id"] == reversed_zone[-1]["load"]


def kill_after_flip(workdir: Path, loads: int = 1200) -> tuple[Path, list[dict[str, Any]]]:
    """Traffic at about 200 commands/s through three proxies; ZONE flipped to reverse after 2 s, the new
    engine SIGKILLed one second after the flip. Returns the config and every command's result."""
    with reference_processes(workdir) as [(legacy, _lp), (new, new_process)]:
        config = write_config(workdir, legacy, new)
        proxies, urls = start_proxies(workdir, config)
        try:
            wait_registered(config, 3)
            flip: dict[str, Any] = {}
            thread = flip_in(2.0, config, flip)

            def kill() -> None:
                while "execution" not in flip:
                    time.sleep(0.01)
                time.sleep(1.0)
                new_process.send_signal(signal.SIGKILL)

            killer = threading.Thread(target=kill)
            killer.start()
            results = asyncio.run(traffic(urls, loads=loads, rate=200))
            thread.join()
            killer.join()
        finally:
            stop_processes(proxies)
    return config, results


def test_the_new_engine_killed_after_the_flip_is_rolled_back_by_the_guard(tmp_path: Path) -> None:
    config, results = kill_after_flip(tmp_path)
    assert_no_secret_logged(tmp_path)
    rolled = load_config(config).routing
    assert rolled.zones[ZONE] == "shadow" and rolled.version == 3  # hold, flip, then the guard's rollback
    catalogue = open_catalogue(load_config(config).store.url.reveal())
    try:
        entries = audit.entries(catalogue.engine)
        windows = [e.detail for e in entries if e.action == "guard.window" and e.subject == f"zone:{ZONE}"]
        rollbacks = [e for e in entries if e.action == "guard.rollback"]
        assert audit.verify(catalogue.engine)[0]
    finally:
        catalogue.close()
    worst = max(w["seconds"] for w in windows)
    print(f"\nguard: {len(rollbacks)} rollback(s) written; unavailability windows in {ZONE} (s): "
          + ", ".join(f"{w['seconds']:.2f} ({w['held']} held)" for w in windows) + f"; worst {worst:.2f} s")
    assert len(rollbacks) == 1 and windows and worst < 30            # within the budget, with margin
    statuses = Counter(r["status"] for r in results)
    assert all(isinstance(s, int) and s < 500 for s in statuses), statuses  # held, not failed
    loads, assignments = legacy_counts(tmp_path)
    created = {r["load"] for r in results if r["kind"] == "create_load" and r["status"] in (200, 201)}
    assert created <= set(loads) and set(loads.values()) == {1}            # nothing lost in legacy
    assert all(n == 1 for n in assignments.values())                     # nothing applied twice
    late = [r for r in results if r["zone"] == ZONE and r["kind"] == "create_load"
            and r["status"] in (200, 201)]
    assert late
