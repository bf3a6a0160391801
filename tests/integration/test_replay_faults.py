"""Replay over real HTTP when a target misbehaves: the outcome says so, nothing crashes.

Starts REAL aiohttp servers on free 127.0.0.1 ports inside the test's event loop:
a well-behaved legacy, and a new engine that hangs, answers garbage, or is not there.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import web

from adapters.memory import MemoryPairs
from shadow.config import parse_config
from shadow.demo.run import free_port
from shadow.model import Command, Status
from shadow.replay import replay
from tests.integration.servers import serving

pytestmark = pytest.mark.integration


async def good(request: web.Request) -> web.Response:
    return web.json_response({"load_id": request.match_info["load_id"], "status": "assigned"})


async def good_read(request: web.Request) -> web.Response:
    return web.json_response({"load_id": request.match_info["load_id"], "zone": "chi"})


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.json_response({})


async def garbage(request: web.Request) -> web.Response:
    return web.Response(body=b"\x00\xffnot json<<", content_type="application/octet-stream")


async def broken(request: web.Request) -> web.Response:
    return web.Response(status=500, text="<html>Internal Server Error</html>", content_type="text/html")


def app(assign, read=good_read) -> web.Application:
    application = web.Application()
    application.router.add_post("/loads/{load_id}/assign", assign)
    application.router.add_get("/loads/{load_id}", read)
    return application


def config(legacy_port: int, new_port: int, new_timeout: float = 5.0):
    return parse_config(f"""
[targets.legacy]
url = "http://127.0.0.1:{legacy_port}"
[targets.new]
url = "http://127.0.0.1:{new_port}"
timeout = {new_timeout}
[[routes]]
match = "POST /loads/{{load_id}}/assign"
command = "assign_load"
keys = ["load_id"]
read = "GET /loads/{{load_id}}"
""")


async def run_against(new_app: web.Application | None, *, new_timeout: float = 5.0, n: int = 12) -> MemoryPairs:
    sink = MemoryPairs()
    commands = [Command(kind="assign_load", keys={"load_id": f"L-{i}"}, payload={"zone": "chi"}) for i in range(n)]
    async with contextlib.AsyncExitStack() as stack:
        legacy = await stack.enter_async_context(serving(app(good)))
        # No application: nothing listens on the port, and connections are refused.
        new = await stack.enter_async_context(serving(new_app)) if new_app is not None else \
            f"http://127.0.0.1:{free_port()}"
        ports = [int(url.rsplit(":", 1)[1]) for url in (legacy, new)]
        stats = await replay(commands, config(*ports, new_timeout), sink, concurrency=8)
        assert stats.pairs == n
    return sink


def test_a_hanging_shadow_times_out_and_legacy_is_unaffected() -> None:
    pairs = asyncio.run(run_against(app(hang), new_timeout=0.3))
    assert {p.new.status for p in pairs} == {Status.TIMEOUT}
    assert all("no answer within 0.3s" in p.new.error for p in pairs)
    assert {p.legacy.status for p in pairs} == {Status.OK}
    assert all(p.legacy.state == {"load_id": p.command.keys["load_id"], "zone": "chi"} for p in pairs)


def test_a_refused_connection_is_an_error_outcome() -> None:
    pairs = asyncio.run(run_against(None))
    assert {p.new.status for p in pairs} == {Status.ERROR}
    assert all("127.0.0.1" in p.new.error for p in pairs)
    assert {p.legacy.status for p in pairs} == {Status.OK}


def test_garbage_is_kept_as_text_and_a_500_is_an_error_with_its_body() -> None:
    pairs = asyncio.run(run_against(app(garbage)))
    assert {p.new.status for p in pairs} == {Status.OK}
    assert all(p.new.response.endswith("not json<<") for p in pairs)
    pairs = asyncio.run(run_against(app(broken, read=broken)))
    assert {(p.new.status, p.new.http_status) for p in pairs} == {(Status.ERROR, 500)}
    assert all("Internal Server Error" in p.new.response for p in pairs)
    assert all("state read-back GET /loads/" in p.new.error for p in pairs)
