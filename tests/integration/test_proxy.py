"""The dual-write proxy over real HTTP: the caller always gets the primary's answer, commands are
mirrored and recorded as pairs, and nothing the shadow does reaches the caller.

Starts REAL servers on free 127.0.0.1 ports: the proxy (aiohttp, in the test's event loop),
small upstream services written here (in the same loop) and, for the end-to-end test, the
reference dispatch pair as subprocesses. Load in these tests is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from adapters.http import HttpTarget, client_session
from adapters.jsonl import JsonlPairs, read_commands
from adapters.memory import MemoryPairs
from rules.catalogue import open_catalogue
from shadow.config import parse_config
from shadow.demo.run import demo_config_text, free_port, reference_services
from shadow.demo.trace import generate_trace
from shadow.model import Status, Target
from shadow.pipeline import compare_into
from shadow.proxy import Proxy
from shadow.replay import replay
from tests.integration.servers import serving

pytestmark = pytest.mark.integration
TOKEN = "admin-secret-token-123"


def upstream(name: str, *, delay: float = 0.0, garbage: bool = False) -> web.Application:
    """A dispatch-like service: commands at /loads/{id}/assign, reads at /loads/{id}, a health route."""
    async def assign(request: web.Request) -> web.Response:
        if delay:
            await asyncio.sleep(delay)
        if garbage:
            return web.Response(body=b"\x00\xff<<not json", content_type="application/octet-stream")
        body = await request.read()
        return web.json_response({"served_by": name, "load_id": request.match_info["load_id"],
                                  "token": request.headers.get("X-Dispatch-Token"),
                                  "shadow": request.headers.get("X-Shadow"), "echo": body.decode(errors="replace")},
                                 headers={"X-Upstream": name, "Keep-Alive": "timeout=5"})

    async def read(request: web.Request) -> web.Response:
        return web.json_response({"served_by": name, "load_id": request.match_info["load_id"]})

    async def zipped(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b'{"packed": true}'), headers={"Content-Encoding": "gzip",
                                                                             "Content-Type": "application/json"})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"target": name})

    app = web.Application()
    app.router.add_post("/loads/{load_id}/assign", assign)
    app.router.add_get("/loads/{load_id}", read)
    app.router.add_get("/zipped", zipped)
    app.router.add_get("/health", health)
    return app


def proxy_config(legacy: str, new: str, tmp: Path, *, new_timeout: float = 2.0, **proxy: Any):
    extra = "\n".join(f"{k} = {json.dumps(v)}" for k, v in proxy.items())
    text = f"""
[targets.legacy]
url = "{legacy}"
[targets.new]
url = "{new}"
timeout = {new_timeout}
[[routes]]
match = "POST /loads/{{load_id}}/assign"
command = "assign_load"
keys = ["load_id"]
read = "GET /loads/{{load_id}}"
[proxy]
pairs = "pairs.jsonl"
{extra}
"""
    (tmp / "shadow.toml").write_text(text)
    return parse_config(text, source=str(tmp / "shadow.toml"), base=tmp)


@contextlib.asynccontextmanager
async def running(config, **kwargs: Any) -> AsyncIterator[tuple[Proxy, str]]:
    proxy = Proxy(config, admin_token=TOKEN, **kwargs)
    async with serving(proxy.app()) as url:
        yield proxy, url


async def assign(session: aiohttp.ClientSession, url: str, load: str, body: Any = None, **headers: str):
    data = json.dumps(body if body is not None else {"zone": "chi"}).encode() if not isinstance(body, bytes) else body
    async with session.post(f"{url}/loads/{load}/assign", data=data, headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers


def versioned(name: str, read_delay: float) -> web.Application:
    """A service whose loads count their commands, and whose read of a load takes `read_delay` before it looks."""
    versions: dict[str, int] = {}

    async def assign(request: web.Request) -> web.Response:
        load = request.match_info["load_id"]
        versions[load] = versions.get(load, 0) + 1
        return web.json_response({"served_by": name, "version": versions[load]})

    async def read(request: web.Request) -> web.Response:
        await asyncio.sleep(read_delay)
        return web.json_response({"version": versions.get(request.match_info["load_id"], 0)})

    app = web.Application()
    app.router.add_post("/loads/{load_id}/assign", assign)
    app.router.add_get("/loads/{load_id}", read)
    return app


def test_the_next_command_on_an_entity_does_not_overtake_the_read_back_of_the_state_before_it(tmp_path) -> None:
    """The caller sends its next command on a load the moment it has the answer to the one before; the proxy's
    read-back of the primary's state after that one (slow here: 0.2 s) must still see that state, not the next."""
    async def scenario() -> None:
        async with serving(versioned("legacy", 0.2)) as legacy, serving(versioned("new", 0.2)) as new:
            sink = MemoryPairs()
            async with running(proxy_config(legacy, new, tmp_path), sink=sink) as (_, url):
                async with aiohttp.ClientSession() as session:
                    for load in ("L-1", "L-2"):
                        for _ in range(3):  # back to back: each command waits only for the previous answer
                            assert (await assign(session, url, load))[0] == 200
                for _ in range(100):
                    if len(sink.pairs) == 6:
                        break
                    await asyncio.sleep(0.05)
        states = sorted((p.command.keys["load_id"], p.legacy.response["version"], p.legacy.state["version"],
                         p.new.response["version"], p.new.state["version"]) for p in sink.pairs)
        assert states == [(load, v, v, v, v) for load in ("L-1", "L-2") for v in (1, 2, 3)]

    asyncio.run(scenario())


def test_caller_gets_the_primary_answer_and_each_command_becomes_a_pair(tmp_path) -> None:
    async def scenario() -> None:
        async with serving(upstream("legacy")) as legacy, serving(upstream("new")) as new:
            sink = MemoryPairs()
            async with running(proxy_config(legacy, new, tmp_path), sink=sink) as (proxy, url):
                async with aiohttp.ClientSession() as session:
                    status, body, headers = await assign(session, url, "L-1", **{"X-Dispatch-Token": "caller-tok-1"})
                    assert status == 200 and json.loads(body)["served_by"] == "legacy"
                    assert headers["X-Upstream"] == "legacy" and "Keep-Alive" not in headers
                    # No token: one is generated. The caller's X-Shadow is not passed on: the mark is the proxy's.
                    await assign(session, url, "L-2", **{"X-Shadow": "1"})
                    async with session.get(f"{url}/loads/L-1") as resp:    # a read: primary only
                        assert json.loads(await resp.read())["served_by"] == "legacy"
                    async with session.get(f"{url}/health") as resp:       # unmatched: passed through
                        assert await resp.json() == {"target": "legacy"}
                    async with session.get(f"{url}/zipped") as resp:       # bytes unchanged, encoding kept
                        assert resp.headers["Content-Encoding"] == "gzip" and await resp.json() == {"packed": True}
            pairs = {p.command.keys["load_id"]: p for p in sink}
            assert set(pairs) == {"L-1", "L-2"} and proxy.metrics.mirrored._value.get() == 2
            first = pairs["L-1"]
            assert first.token == "caller-tok-1" and first.legacy.response["token"] == "caller-tok-1"
            assert first.new.response["token"] == "caller-tok-1" and first.new.response["shadow"] == "1"
            assert first.legacy.response["shadow"] is None
            assert first.legacy.state == {"served_by": "legacy", "load_id": "L-1"}
            assert first.new.state == {"served_by": "new", "load_id": "L-1"}
            generated = pairs["L-2"].token
            assert len(generated) == 36 and pairs["L-2"].new.response["token"] == generated
            assert pairs["L-2"].legacy.response["shadow"] is None and pairs["L-2"].new.response["shadow"] == "1"

    asyncio.run(scenario())


@pytest.mark.parametrize("fault", ["hangs", "refuses", "garbage"])
def test_a_broken_shadow_changes_nothing_for_the_caller_under_load(tmp_path, fault) -> None:
    async def scenario() -> None:
        shadow_app = upstream("new", delay=30 if fault == "hangs" else 0, garbage=fault == "garbage")
        async with serving(upstream("legacy")) as legacy, serving(shadow_app) as new:
            new_url = f"http://127.0.0.1:{free_port()}" if fault == "refuses" else new
            sink = MemoryPairs()
            # Only the hanging shadow needs a short timeout; the others must not time out on a busy machine.
            config = proxy_config(legacy, new_url, tmp_path, new_timeout=0.3 if fault == "hangs" else 10,
                                  concurrency=64, queue=1000)
            async with running(config, sink=sink) as (proxy, url):
                async with aiohttp.ClientSession() as session:
                    answers = await asyncio.gather(*(assign(session, url, f"L-{i}") for i in range(300)))
                assert {status for status, _, _ in answers} == {200}
                assert all(json.loads(body)["served_by"] == "legacy" for _, body, _ in answers)
            expected = {"hangs": Status.TIMEOUT, "refuses": Status.ERROR, "garbage": Status.OK}[fault]
            assert len(sink) == 300 and {p.new.status for p in sink} == {expected}
            assert {p.legacy.status for p in sink} == {Status.OK}
            if fault == "garbage":
                assert all(p.new.response.endswith("<<not json") for p in sink)

    asyncio.run(scenario())


def test_a_full_queue_drops_and_counts_mirrors_and_never_waits(tmp_path) -> None:
    async def scenario() -> None:
        async with serving(upstream("legacy")) as legacy, serving(upstream("new", delay=30)) as new:
            config = proxy_config(legacy, new, tmp_path, new_timeout=1.0, concurrency=1, queue=2, drain_seconds=0.2)
            async with running(config, sink=MemoryPairs()) as (proxy, url):
                async with aiohttp.ClientSession() as session:
                    answers = await asyncio.gather(*(assign(session, url, f"L-{i}") for i in range(50)))
                assert {status for status, _, _ in answers} == {200}
                dropped = proxy.metrics.dropped.labels("queue_full")._value.get()
                assert dropped >= 45
                async with aiohttp.ClientSession() as session, session.get(f"{url}/-/metrics") as resp:
                    text = await resp.text()
                assert f'shadow_proxy_mirror_dropped_total{{reason="queue_full"}} {dropped}' in text

    asyncio.run(scenario())


def test_body_limit_and_malformed_json(tmp_path) -> None:
    async def scenario() -> None:
        async with serving(upstream("legacy")) as legacy, serving(upstream("new")) as new:
            sink = MemoryPairs()
            async with running(proxy_config(legacy, new, tmp_path, max_body=1000), sink=sink) as (proxy, url):
                async with aiohttp.ClientSession() as session:
                    status, body, _ = await assign(session, url, "L-big", {"zone": "chi", "pad": "x" * 5000})
                    assert status == 413 and b"over 1000 bytes" in body
                    status, body, _ = await assign(session, url, "L-bad", b'{"zone": "chi",,}')
                    assert status == 200 and json.loads(body)["echo"] == '{"zone": "chi",,}'
            (pair,) = list(sink)
            assert pair.command.keys == {"load_id": "L-bad"} and "not JSON" in pair.error
            assert proxy.metrics.too_large._value.get() == 1

    asyncio.run(scenario())


def test_admin_endpoints_need_the_token_and_reload_applies_a_new_route_table(tmp_path) -> None:
    async def scenario() -> None:
        async with serving(upstream("legacy")) as legacy, serving(upstream("new")) as new:
            config = proxy_config(legacy, new, tmp_path, reload_seconds=0.1)
            async with running(config, sink=MemoryPairs()) as (proxy, url):
                async with aiohttp.ClientSession() as session:
                    for headers in ({}, {"Authorization": "Bearer wrong"}):
                        async with session.get(f"{url}/-/admin/status", headers=headers) as resp:
                            assert resp.status == 401
                    auth = {"Authorization": f"Bearer {TOKEN}"}
                    async with session.get(f"{url}/-/admin/status", headers=auth) as resp:
                        first = (await resp.json())["route_table"]
                    # A flip by config change: the file watcher applies it without dropping requests.
                    source = tmp_path / "shadow.toml"
                    source.write_text(source.read_text() + '\n[routing]\nversion = 2\ndefault = "reverse"\n')
                    sends = [assign(session, url, f"L-{i}") for i in range(100)]
                    answers = await asyncio.gather(*sends, _until_version_changes(session, url, first))
                    assert {status for status, _, _ in answers[:-1]} == {200}
                    async with session.get(f"{url}/-/health") as resp:
                        second = (await resp.json())["route_table"]
                    assert first.startswith("0-") and second.startswith("2-")  # [routing] version, then the hash
                    status, body, _ = await assign(session, url, "L-after")
                    assert json.loads(body)["served_by"] == "new"  # reverse: the new engine answers
                    async with session.post(f"{url}/-/admin/reload", headers=auth) as resp:
                        assert (await resp.json()) == {"route_table": second, "changed": False}

    asyncio.run(scenario())


def test_jsonl_pairs_and_captured_commands_reach_their_files_while_the_proxy_runs(tmp_path) -> None:
    """`shadow compare FILE` on a running proxy's pairs sees them all within a second or two, not at shutdown."""
    from adapters.jsonl import JsonlPairs, read_commands

    async def scenario() -> None:
        async with serving(upstream("legacy")) as legacy, serving(upstream("new")) as new:
            sink = JsonlPairs(tmp_path / "live-pairs.jsonl", append=True)
            async with running(proxy_config(legacy, new, tmp_path), sink=sink,
                               capture=tmp_path / "capture.jsonl") as (_proxy, url):
                async with aiohttp.ClientSession() as session:
                    for i in range(20):  # few enough to sit in the 64 KB write buffers
                        assert (await assign(session, url, f"L-{i}"))[0] == 200
                for _ in range(60):  # at most 3 s, while the proxy still runs
                    await asyncio.sleep(0.05)
                    if len(list(JsonlPairs(tmp_path / "live-pairs.jsonl"))) == 20:
                        break
                assert len(list(JsonlPairs(tmp_path / "live-pairs.jsonl"))) == 20
                assert len(list(read_commands(tmp_path / "capture.jsonl"))) == 20

    asyncio.run(scenario())


def test_admin_endpoints_can_be_turned_off_and_are_then_never_proxied(tmp_path) -> None:
    async def scenario() -> None:
        async with serving(upstream("legacy")) as legacy, serving(upstream("new")) as new:
            async with running(proxy_config(legacy, new, tmp_path, admin=False), sink=MemoryPairs(),
                               own_process=True) as (proxy, url):
                auth = {"Authorization": f"Bearer {TOKEN}"}
                async with aiohttp.ClientSession() as session:
                    for method, path in (("GET", "/-/admin/status"), ("POST", "/-/admin/reload"), ("GET", "/-/admin/x")):
                        async with session.request(method, f"{url}{path}", headers=auth) as resp:
                            assert resp.status == 404 and "admin = false" in (await resp.json())["error"]
                    for i in range(50):
                        assert (await assign(session, url, f"L-{i}"))[0] == 200
                    gc.collect()
                    await asyncio.sleep(0.12)  # two ticks of the stall watch's 50 ms timer at least
                    async with session.get(f"{url}/-/metrics") as resp:
                        text = await resp.text()
                # own_process: collections are timed, the heap alive at start-up is frozen, the GIL handed back sooner,
                # the event loop watched for stalls.
                assert 'shadow_proxy_gc_pause_seconds_count{generation="2"}' in text
                timers = re.search(r"^shadow_proxy_loop_lag_seconds_count (\S+)$", text, re.M)
                assert timers is not None and float(timers.group(1)) >= 1  # the stall watch's timer has run
                assert gc.get_freeze_count() > 0 and sys.getswitchinterval() == pytest.approx(0.001)
        gc.unfreeze()
        assert sys.getswitchinterval() == pytest.approx(0.005)  # restored when the proxy closed

    asyncio.run(scenario())


async def _until_version_changes(session: aiohttp.ClientSession, url: str, first: str) -> None:
    for _ in range(100):  # at most 5 s
        async with session.get(f"{url}/-/health") as resp:
            if (await resp.json())["route_table"] != first:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the new route table was not applied")


def test_graceful_shutdown_drains_queued_mirrors(tmp_path) -> None:
    async def scenario() -> None:
        async with serving(upstream("legacy")) as legacy, serving(upstream("new", delay=0.2)) as new:
            sink = MemoryPairs()
            config = proxy_config(legacy, new, tmp_path, concurrency=4, drain_seconds=10)
            async with running(config, sink=sink) as (_proxy, url):
                async with aiohttp.ClientSession() as session:
                    await asyncio.gather(*(assign(session, url, f"L-{i}") for i in range(20)))
                assert len(sink) < 20  # still mirroring when the proxy is told to stop
            assert len(sink) == 20

    asyncio.run(scenario())


def test_proxy_in_front_of_the_reference_pair_finds_what_replay_finds(tmp_path) -> None:
    """600 commands through the proxy, the same 600 replayed: the same quirks (field, change, class)."""
    commands = generate_trace(600, seed=21)

    async def through_proxy(legacy: str, new: str, capture: Path) -> None:
        ports = [int(u.rsplit(":", 1)[1]) for u in (legacy, new)]
        config = parse_config(demo_config_text(*ports), source=str(tmp_path / "p" / "shadow.toml"), base=tmp_path / "p")
        recorded: dict[str, asyncio.Event] = {}

        class Recorded(JsonlPairs):
            def write(self, pair) -> None:
                super().write(pair)
                recorded.setdefault(pair.token, asyncio.Event()).set()

        async with running(config, capture=capture, sink=Recorded(config.proxy.pairs)) as (_proxy, url):
            callers = config.model_copy(update={"targets": {**config.targets, "legacy": config.targets["legacy"]
                                                           .model_copy(update={"url": url})}})
            async with client_session(16) as session:
                caller = HttpTarget(Target.LEGACY, callers.targets["legacy"], callers.routes, session=session)

                async def send(command, after: str | None):
                    # In production a load's next command comes minutes later, long after its pair was
                    # recorded; the test keeps that order without waiting minutes.
                    if after is not None:
                        await recorded.setdefault(after, asyncio.Event()).wait()
                    return await caller.send(command)

                loop, started, first = asyncio.get_running_loop(), asyncio.get_running_loop().time(), commands[0]
                sent, previous = [], {}
                for command in commands:
                    due = (command.received_at - first.received_at).total_seconds() / 8000
                    await asyncio.sleep(max(0.0, started + due - loop.time()))
                    load = command.keys["load_id"]
                    sent.append(asyncio.create_task(send(command, previous.get(load))))
                    previous[load] = command.token
                outcomes = await asyncio.gather(*sent)
                assert {o.status for o in outcomes} == {Status.OK}, [o for o in outcomes if o.status is not Status.OK][:3]

    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    with reference_services(tmp_path, ("legacy", "new", "legacy", "new")) as (legacy, new, legacy_2, new_2):
        asyncio.run(through_proxy(legacy, new, tmp_path / "captured.jsonl"))
        ports = [int(u.rsplit(":", 1)[1]) for u in (legacy_2, new_2)]
        config = parse_config(demo_config_text(*ports), source=str(tmp_path / "r" / "shadow.toml"), base=tmp_path / "r")
        asyncio.run(replay(commands, config, JsonlPairs(tmp_path / "r" / "pairs.jsonl")))
    captured = list(read_commands(tmp_path / "captured.jsonl"))
    assert sorted(c.token for c in captured) == sorted(c.token for c in commands)  # --capture records them all
    for load in {c.keys["load_id"] for c in commands}:  # and each load's commands in the order they were served
        assert [c.token for c in captured if c.keys["load_id"] == load] == \
            [c.token for c in commands if c.keys["load_id"] == load]

    found = {}
    for name, pairs in (("proxy", tmp_path / "p" / "proxy-pairs.jsonl"), ("replay", tmp_path / "r" / "pairs.jsonl")):
        catalogue = open_catalogue(f"sqlite:///{tmp_path / name}.db")
        compare_into(JsonlPairs(pairs), catalogue, rules_folder=tmp_path / name / "rules")
        found[name] = {(q.field, q.change, q.transition) for q in catalogue.quirks()}
        catalogue.close()
    assert found["proxy"] == found["replay"] and len(found["proxy"]) >= 15


def test_parallel_mirroring_and_sampling(tmp_path) -> None:
    async def scenario() -> None:
        async with serving(upstream("legacy", delay=0.05)) as legacy, serving(upstream("new")) as new:
            sink = MemoryPairs()
            config = proxy_config(legacy, new, tmp_path, mirror="parallel")
            async with running(config, sink=sink) as (_proxy, url):
                async with aiohttp.ClientSession() as session:
                    await asyncio.gather(*(assign(session, url, f"L-{i}") for i in range(20)))
            # In parallel the shadow is asked before the primary has answered; the pair still has both.
            assert len(sink) == 20 and all(p.legacy.status is Status.OK and p.new.status is Status.OK for p in sink)
        text = (tmp_path / "shadow.toml").read_text().replace('read = "GET', 'sample = 0.0\nread = "GET')
        (tmp_path / "shadow.toml").write_text(text)
        config = parse_config(text, source=str(tmp_path / "shadow.toml"), base=tmp_path)
        async with serving(upstream("legacy")) as legacy, serving(upstream("new")) as new:
            config = config.model_copy(update={"targets": {
                "legacy": config.targets["legacy"].model_copy(update={"url": legacy}),
                "new": config.targets["new"].model_copy(update={"url": new})}})
            sink = MemoryPairs()
            async with running(config, sink=sink) as (proxy, url):
                async with aiohttp.ClientSession() as session:
                    answers = await asyncio.gather(*(assign(session, url, f"L-{i}") for i in range(10)))
            assert {a[0] for a in answers} == {200} and len(sink) == 0
            assert proxy.metrics.sampled_out._value.get() == 10

    asyncio.run(scenario())


def test_pairs_can_go_to_the_catalogue_directly(tmp_path) -> None:
    async def scenario() -> None:
        async with serving(upstream("legacy")) as legacy, serving(upstream("new")) as new:
            config = proxy_config(legacy, new, tmp_path, sink="catalogue")
            async with running(config) as (_proxy, url):
                async with aiohttp.ClientSession() as session:
                    await asyncio.gather(*(assign(session, url, f"L-{i}") for i in range(30)))

    asyncio.run(scenario())
    catalogue = open_catalogue(f"sqlite:///{tmp_path / 'shadow.db'}")
    try:
        quirks = {q.field: q.pairs for q in catalogue.quirks()}
        assert quirks["served_by"] == 30 and "shadow" in quirks  # the X-Shadow header the new side saw
        assert len(list(catalogue.stored_pairs())) == 30
    finally:
        catalogue.close()
