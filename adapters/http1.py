"""A lean HTTP/1.1 client for the proxy's two fixed upstreams: pooled keep-alive connections, one write per request.

The proxy sends every command to two upstreams (primary and shadow); a general
client's per-request work (URL parsing, cookie and header machinery, separate
writes for headers and body) was most of its CPU (profiled: aiohttp's client,
about half the proxy's time). This one sends a request as one buffer, parses
answers with httptools (llhttp, the parser Node.js uses), and keeps connections
open for the next request. Bodies are read whole (chunked ones de-chunked):
the proxy forwards complete answers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import urlsplit

import httptools

__all__ = ["Http1Pool", "Http1Response", "UpstreamError", "origin_form"]


def origin_form(raw: str) -> str:
    """A request-target as the caller sent it (aiohttp's request.raw_path), in origin-form: absolute-form loses its
    scheme and authority. Not request.path_qs: yarl's rendering turns '//x' into '////x' and drops a bare '?'."""
    if raw.startswith("/"):
        return raw
    rest = raw.partition("://")[2]
    path = rest[len(rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]):]
    return path if path.startswith("/") else "/" + path


class UpstreamError(OSError):
    """The upstream closed the connection or answered something that is not HTTP/1.x."""


@dataclass
class Http1Response:
    """A whole answer: status, reason, headers as sent (names as bytes), body."""

    status: int
    reason: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Http1Response] | None = None
        self.response: Http1Response | None = None
        self.chunks: list[bytes] = []
        self.header_name = b""
        self.trailers = False  # the header section is complete: fields now are trailer fields
        self.reusable = True
        self.head = False
        self.answered = False  # any byte of the current answer arrived
        self.used = 0          # requests sent on this connection

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamError("upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"upstream answered something that is not HTTP/1.x: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self.waiter is None or self.waiter.done():
            return
        if self.response is not None and self.response.status >= 200 and exc is None and not self._framed():
            self._finish()  # a body without length or chunks ends with the connection
            return
        self._fail(UpstreamError("upstream closed the connection before answering"))

    def _framed(self) -> bool:
        assert self.response is not None
        return any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.response.headers)

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        # Here, not in on_status: a status line without a reason phrase has no status callback, and after an
        # interim answer (1xx) the next one must not be taken for it.
        self.response, self.chunks, self.trailers = Http1Response(0, ""), [], False

    def on_status(self, status: bytes) -> None:
        assert self.response is not None
        self.response.reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        if not self.trailers:  # trailer fields are dropped, never merged into the header section (RFC 9110 §6.5.1)
            self.response.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response.status = self.parser.get_status_code()
        self.trailers = True
        if self.response.status >= 200 and (self.head or self.response.status in (204, 304)):
            self._finish()  # no body follows, whatever the headers say

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self.waiter is None or self.waiter.done() or self.response is None:
            return
        if self.response.status < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the final one follows on this connection
        self.response.body = b"".join(self.chunks)
        if not self.parser.should_keep_alive():
            self.reusable = False
        self.waiter.set_result(self.response)

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def send(self, data: bytes, head: bool) -> asyncio.Future[Http1Response]:
        """Write one request; the future resolves with its whole answer."""
        assert self.transport is not None
        self.parser = httptools.HttpResponseParser(self)
        self.response, self.chunks, self.head, self.answered = None, [], head, False
        self.used += 1
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


class Http1Pool:
    """Keep-alive connections to one upstream (scheme http, host, port), reused across requests."""

    def __init__(self, base_url: str, *, keep: int = 256) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"the lean client speaks plain http only, not {parts.scheme!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.authority = (parts.netloc or self.host).encode("latin-1")
        self.keep = keep
        self._idle: deque[_Connection] = deque()

    async def _connection(self) -> _Connection:
        while self._idle:
            found = self._idle.pop()
            if found.reusable and found.transport is not None and not found.transport.is_closing():
                return found
        loop = asyncio.get_running_loop()
        _transport, protocol = await loop.create_connection(_Connection, self.host, self.port)
        return protocol

    async def request(self, method: str, path_qs: str, headers: Iterable[tuple[str, str]], body: bytes,
                      timeout: float) -> Http1Response:
        """Send one request and read its whole answer; raises asyncio.TimeoutError, OSError (incl. UpstreamError)."""
        lines = [f"{method} {self.prefix}{path_qs} HTTP/1.1\r\n".encode("latin-1"), b"Host: " + self.authority + b"\r\n"]
        for name, value in headers:
            # The server layer read the caller's bytes as UTF-8 with surrogateescape: the same bytes go on.
            lines.append(f"{name}: {value}\r\n".encode("utf-8", "surrogateescape"))
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        lines.append(body)
        data = b"".join(lines)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for attempt in (1, 2):
            connection = await asyncio.wait_for(self._connection(), max(deadline - loop.time(), 0.001))
            try:
                response = await asyncio.wait_for(connection.send(data, method == "HEAD"),
                                                  max(deadline - loop.time(), 0.001))
            except UpstreamError:
                connection.reusable = False
                # A kept-alive connection the upstream closed as we wrote: nothing of the request was
                # answered, so it never reached the application; send it again, once, on a new one.
                if attempt == 1 and connection.used > 1 and not connection.answered:
                    continue
                raise
            except BaseException:
                connection.reusable = False
                if connection.transport is not None:
                    connection.transport.close()
                raise
            if connection.reusable and len(self._idle) < self.keep:
                self._idle.append(connection)
            elif connection.transport is not None:
                connection.transport.close()
            return response
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every idle connection."""
        while self._idle:
            connection = self._idle.pop()
            if connection.transport is not None:
                connection.transport.close()
