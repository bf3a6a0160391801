"""The proxy's lean HTTP/1.1 client against raw servers that answer byte for byte what each case needs.

Servers here are asyncio socket servers on 127.0.0.1 (in the test's loop), so every framing
case is exact: lengths, chunks, bodies ended by close, HEAD, 204, keep-alive and stale connections.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.http1 import Http1Pool, UpstreamError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length) if length else b""


def run(handler: Handler, scenario: Callable[[Http1Pool], Awaitable[None]]) -> None:
    async def main() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = Http1Pool(f"http://127.0.0.1:{port}")
        try:
            await scenario(pool)
        finally:
            pool.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_one_connection_carries_many_requests_and_the_request_is_exact() -> None:
    seen: list[tuple[bytes, bytes]] = []
    connections = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while True:
            try:
                head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            seen.append((head, body))
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Upstream: legacy\r\n\r\nok")

    async def scenario(pool: Http1Pool) -> None:
        for i in range(3):
            answer = await pool.request("POST", f"/loads/L-{i}/assign?x=1", [("X-Dispatch-Token", f"t{i}")],
                                        b'{"zone": "chi"}', 2)
            assert (answer.status, answer.reason, answer.body) == (201, "Created", b"ok")
            assert (b"X-Upstream", b"legacy") in answer.headers

    run(handler, scenario)
    assert len(connections) == 1 and len(seen) == 3
    head, body = seen[0]
    assert head.startswith(b"POST /loads/L-0/assign?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"X-Dispatch-Token: t0\r\n" in head and b"Content-Length: 15\r\n" in head and body == b'{"zone": "chi"}'


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=0, max_size=6))
def test_a_chunked_answer_is_read_whole(chunks: list[bytes]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for chunk in chunks:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    async def scenario(pool: Http1Pool) -> None:
        answer = await pool.request("GET", "/x", [], b"", 2)
        assert answer.body == b"".join(chunks)

    run(handler, scenario)


def test_a_body_without_length_ends_with_the_connection_and_it_is_not_reused() -> None:
    opened = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened.append(1)
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async def scenario(pool: Http1Pool) -> None:
        assert (await pool.request("GET", "/a", [], b"", 2)).body == b"all of it"
        assert (await pool.request("GET", "/b", [], b"", 2)).body == b"all of it"

    run(handler, scenario)
    assert len(opened) == 2


def test_head_and_204_answers_have_no_body_whatever_their_headers_say() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head, _ = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if head.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    async def scenario(pool: Http1Pool) -> None:
        head = await pool.request("HEAD", "/x", [], b"", 2)
        assert head.status == 200 and head.body == b""
        assert (await pool.request("DELETE", "/x", [], b"", 2)).status == 204
        assert (await pool.request("HEAD", "/x", [], b"", 2)).status == 200  # the connection still works

    run(handler, scenario)


def test_a_kept_alive_connection_the_upstream_closed_is_replaced_once() -> None:
    served = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        served.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
        await writer.drain()
        writer.close()  # keep-alive promised, then closed: the next request finds it dead

    async def scenario(pool: Http1Pool) -> None:
        assert (await pool.request("POST", "/a", [], b"1", 2)).body == b"x"
        await asyncio.sleep(0.05)
        assert (await pool.request("POST", "/b", [], b"2", 2)).body == b"x"

    run(handler, scenario)
    assert len(served) == 2  # each request applied once


def test_timeouts_refusals_and_garbage_are_errors_the_proxy_already_handles() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"\x00\xffSPLAT not http\r\n\r\n")

    async def slow(pool: Http1Pool) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await pool.request("POST", "/a", [], b"1", 0.2)

    async def bad(pool: Http1Pool) -> None:
        with pytest.raises(UpstreamError, match="not HTTP"):
            await pool.request("POST", "/a", [], b"1", 2)

    run(hang, slow)
    run(garbage, bad)

    async def refused() -> None:
        pool = Http1Pool("http://127.0.0.1:9")
        with pytest.raises(OSError):
            await pool.request("GET", "/", [], b"", 2)

    asyncio.run(refused())


def test_only_plain_http_is_spoken() -> None:
    with pytest.raises(ValueError, match="plain http"):
        Http1Pool("https://example.invalid")
