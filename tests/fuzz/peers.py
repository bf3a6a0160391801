"""The fuzzed proxy's peers: a recording upstream (httptools) that answers what each example scripted,
and a raw caller that sends a request's bytes, pausing where the example says, and reads the answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools

from tests.fuzz.answers import Answer
from tests.fuzz.calls import Call


@dataclass
class Received:
    """One request an upstream received."""

    method: bytes = b""
    target: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    def all(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]


class Upstream:
    """A recording HTTP/1.1 server on 127.0.0.1: parses each request (httptools) and answers `answer`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.answer = Answer()
        self.received: list[Received] = []
        self.unparseable: list[bytes] = []  # requests that were not HTTP/1.1 (a proxy bug)
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done: list[Received] = []
        current = Received()

        class Callbacks:
            def on_url(self, url: bytes) -> None:
                current.target += url

            def on_header(self, name: bytes, value: bytes) -> None:
                current.headers.append((name, value))

            def on_body(self, body: bytes) -> None:
                current.body += body

            def on_message_complete(self) -> None:
                nonlocal current
                current.method = parser.get_method()
                done.append(current)
                current = Received()

        parser = httptools.HttpRequestParser(Callbacks())
        seen = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                seen += data
                try:
                    parser.feed_data(data)
                except httptools.HttpParserError:
                    self.unparseable.append(seen)
                    return
                while done:
                    request = done.pop(0)
                    self.received.append(request)
                    expect = any(v.lower() == b"100-continue" for v in request.all(b"expect"))
                    wire, close = self.answer.render(request.method == b"HEAD", expect)
                    writer.write(wire)
                    await writer.drain()
                    if close:
                        return
                    seen = b""
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()


@dataclass
class Reply:
    """What the caller received: the final answer (1xx interim answers set apart)."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    interim: list[int] = field(default_factory=list)

    def all(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]


async def exchange(port: int, call: Call, timeout: float = 10.0) -> Reply | None:
    """Send one request as raw bytes (pausing at `call.pieces`) and read the answer meanwhile (a server may answer
    and close before the request is all sent); None: the connection closed without an answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    reply = Reply()
    complete = False

    class Callbacks:
        def on_header(self, name: bytes, value: bytes) -> None:
            reply.headers.append((name.lower(), value))

        def on_headers_complete(self) -> None:
            nonlocal complete
            reply.status = parser.get_status_code()
            if call.method == "HEAD" and reply.status >= 200:
                complete = True

        def on_body(self, body: bytes) -> None:
            reply.body += body

        def on_message_complete(self) -> None:
            nonlocal complete
            if 100 <= reply.status < 200:
                reply.interim.append(reply.status)
                reply.headers.clear()
            else:
                complete = True

    parser = httptools.HttpResponseParser(Callbacks())

    async def answer() -> Reply | None:
        try:
            while not complete:
                data = await reader.read(65536)
                if not data:
                    if reply.status >= 200:
                        parser.feed_data(b"")  # a body that ends with the connection
                        return reply
                    return None
                parser.feed_data(data)
        except (ConnectionResetError, BrokenPipeError):
            return reply if complete else None
        return reply

    reading = asyncio.create_task(answer())
    try:
        start, end = 0, call.hang_up or len(call.wire)
        try:
            for cut in (*call.pieces, end):
                if reading.done():
                    break  # answered (and maybe closed) before the whole request was sent
                writer.write(call.wire[start:cut])
                start = cut
                if cut < end:
                    await writer.drain()
                    await asyncio.sleep(0.002)  # the server sees the request in several reads
        except (ConnectionResetError, BrokenPipeError):
            pass
        if call.hang_up is not None:
            reading.cancel()
            return None
        async with asyncio.timeout(timeout):
            return await asyncio.shield(reading)
    finally:
        if not reading.done():
            reading.cancel()
        writer.close()
