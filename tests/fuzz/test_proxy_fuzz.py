"""Fuzzing the proxy with raw HTTP/1.1: whatever a caller or the primary sends, the proxy never crashes,
never answers an error of its own where the primary answered, never mirrors a read, never logs a secret.

Starts REAL servers on 127.0.0.1, in one event loop kept for the whole module: the proxy (aiohttp) and
two recording upstreams, legacy (the primary) and new (the shadow), that parse every request with
httptools and answer what the example scripted (tests/fuzz/peers.py). Each example sends one request
(tests/fuzz/calls.py) over a raw socket, the primary answers it (tests/fuzz/answers.py), and the test
waits until the proxy has handled it and every mirror it caused is done.
SHADOW_FUZZ_EXAMPLES sets the number of examples across the module (default 3000; `make fuzz` 50,000).

What the proxy may answer of its own (anything else is the primary's answer, exactly): 413 for a
body over [proxy] max_body; 502 when the primary closed without answering or answered something
that is not HTTP/1.1 (a status line without its SP, control characters, obs-fold, two lengths, a
101 nobody asked for); the endpoints under /-/; CONNECT and asterisk-form requests, which are about
the proxy itself (the server layer answers 404); and, from the HTTP server layer (aiohttp, llhttp),
400 for a request that breaks RFC 9112: a method token llhttp does not know (lowercase included), a
bad version or target, obs-fold, control characters, a field over 8190 bytes, a field that is not
a list sent twice, TE with CL, a bad length or chunk, bare LF.
The server layer also adds Date, Server and (for a body without one) Content-Type:
application/octet-stream when the primary sent none, and writes header values as UTF-8: a value
that is UTF-8 passes byte for byte, obs-text that is not is read as ISO-8859-1. Trailer fields of
a chunked answer are dropped (the caller gets the body with a Content-Length).
"""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from hypothesis import HealthCheck, example, given, settings

from adapters.jsonl import JsonlPairs
from shadow.config import parse_config
from shadow.model import Pair
from shadow.proxy import Proxy
from shadow.secrets import SecretFilter, register_secret
from tests.fuzz.answers import Answer, answers
from tests.fuzz.calls import (ADMIN_TOKEN, DSN_PASSWORD, HEADER_SECRET, HOP_BY_HOP, LEGACY_ONLY_ZONE, MAX_BODY, SECRETS, Call,
                              hang_ups, malformed_requests, requests, routes_toml)
from tests.fuzz.peers import Received, Reply, Upstream, exchange
from tests.integration.servers import serving

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("SHADOW_FUZZ_EXAMPLES", "3000"))
HEALTH = Call("GET", "/-/health", "HTTP/1.1", [], b"", b"GET /-/health HTTP/1.1\r\nHost: fuzz.example\r\n\r\n")
NEXT = Call("GET", "/next", "HTTP/1.1", [], b"", b"GET /next HTTP/1.1\r\nHost: fuzz.example\r\n\r\n")
FOLLOW_UP = Answer(status=299, status_line=b"HTTP/1.1 299 Next", body=b"the next answer")
ADMIN = {("/-/health", "GET"), ("/-/health", "HEAD"), ("/-/metrics", "GET"), ("/-/metrics", "HEAD"),
         ("/-/admin/status", "GET"), ("/-/admin/status", "HEAD"), ("/-/admin/reload", "POST")}


def examples(share: float) -> settings:
    return settings(max_examples=max(1, int(EXAMPLES * share)), deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


class Captured(logging.Handler):
    """Every log record as the CLI's handler writes it (through the secret filter), with its exception type."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(self._exception_type)
        self.addFilter(SecretFilter())
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.records: list[tuple[int, str, type[BaseException] | None, str]] = []

    @staticmethod
    def _exception_type(record: logging.LogRecord) -> bool:
        record.fuzz_exception = record.exc_info[0] if record.exc_info else None  # before the filter drops exc_info
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.name, record.fuzz_exception, self.format(record)))


class RecordedPairs(JsonlPairs):
    """The proxy's default sink (a JSONL file), keeping what it wrote."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.pairs: list[Pair] = []

    def write(self, pair: Pair) -> None:
        super().write(pair)
        self.pairs.append(pair)


@dataclass
class Harness:
    """The proxy and its two upstreams, in one event loop for the whole module."""

    loop: asyncio.AbstractEventLoop
    proxy: Proxy
    port: int
    legacy: Upstream
    new: Upstream
    sink: RecordedPairs
    log: Captured
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    in_flight: int = 0  # requests the proxy's application is handling

    @web.middleware
    async def counting(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.in_flight += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    def counters(self) -> dict[str, float]:
        m = self.proxy.metrics
        return {name: metric._value.get() for name, metric in (
            ("mirrored", m.mirrored), ("too_large", m.too_large), ("primary_errors", m.primary_errors),
            ("commands", m.commands))}

    async def example(self, call: Call) -> tuple[Reply | None, Reply | None]:
        try:
            reply = await exchange(self.port, call)
        finally:
            async with asyncio.timeout(30):  # every request handled, every mirror it caused done
                while self.in_flight:
                    await asyncio.sleep(0.001)
                assert self.proxy._queue is not None
                await self.proxy._queue.join()
        return reply, await exchange(self.port, HEALTH)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running(tmp_path_factory.mktemp("fuzz")) as h:
        yield h


@contextlib.contextmanager
def running(tmp: Path) -> Iterator[Harness]:
    """The proxy (its files in tmp) and its upstreams, serving until the block ends."""
    loop = asyncio.new_event_loop()
    legacy, new = Upstream("legacy"), Upstream("new")
    urls = [loop.run_until_complete(u.start()) for u in (legacy, new)]
    text = f"""
[targets.legacy]
url = "{urls[0]}"
state = "postgresql+psycopg://shadow:{DSN_PASSWORD}@127.0.0.1:9/legacy"
headers = {{ X-Upstream-Key = "{HEADER_SECRET}" }}
[targets.new]
url = "{urls[1]}"
headers = {{ X-Upstream-Key = "{HEADER_SECRET}" }}
{routes_toml()}
[routing]
zones = {{ {LEGACY_ONLY_ZONE} = "legacy" }}
[store]
url = "postgresql+psycopg://shadow:{DSN_PASSWORD}@127.0.0.1:9/shadow"
[proxy]
max_body = {MAX_BODY}
registry = false
concurrency = 4
"""
    (tmp / "shadow.toml").write_text(text)
    config = parse_config(text, source=str(tmp / "shadow.toml"), base=tmp)
    register_secret(ADMIN_TOKEN)  # as `shadow proxy` does with SHADOW_ADMIN_TOKEN
    sink = RecordedPairs(tmp / "pairs.jsonl")
    proxy = Proxy(config, admin_token=ADMIN_TOKEN, sink=sink)
    root = logging.getLogger()
    # Alone on the root logger: a handler left by an earlier test (the CLI's, with its secret filter) would see
    # each record first, and its filter replaces exc_info with the formatted text, hiding the exception's type.
    others = root.handlers[:]
    for handler in others:
        root.removeHandler(handler)
    captured = Captured()
    root.addHandler(captured)
    h = Harness(loop, proxy, 0, legacy, new, sink, captured)
    app = proxy.app()
    app.middlewares.append(h.counting)
    url = loop.run_until_complete(h.stack.enter_async_context(serving(app)))
    h.port = int(url.rsplit(":", 1)[1])
    try:
        yield h
    finally:
        loop.run_until_complete(h.stack.aclose())
        for upstream in (legacy, new):
            loop.run_until_complete(upstream.stop())
        loop.run_until_complete(_cancel_the_rest())
        loop.close()
        root.removeHandler(captured)
        for handler in others:
            root.addHandler(handler)


async def _cancel_the_rest() -> None:
    """Connection handlers still waiting for callers that never finished a request."""
    left = asyncio.all_tasks() - {asyncio.current_task()}
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)


# -- the properties ---------------------------------------------------------------------


def _is_read_back(request: Received) -> bool:
    return request.all(b"x-upstream-key") == [HEADER_SECRET.encode()]


def _json(reply: Reply) -> Any:
    try:
        return orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return None


def _short(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(n, v if len(v) < 60 else v[:40] + b"...(%d bytes)" % len(v)) for n, v in fields]


def _proxy_error(reply: Reply, status: int, starts: str, head: bool = False) -> None:
    assert reply.status == status and (head or str((_json(reply) or {}).get("error", "")).startswith(starts)), \
        f"expected the proxy's {status} ({starts} …), got {reply.status} {reply.body[:200]!r}"


def _assert_primary_answer(reply: Reply, answer: Answer, call: Call) -> None:
    """The caller got the primary's status, body and fields (minus hop-by-hop), byte for byte."""
    assert reply.status == answer.status, f"status {reply.status}, the primary answered {answer.status}"
    bodiless = call.method == "HEAD" or answer.status in (204, 304)
    assert reply.body == (b"" if bodiless else answer.body), "the body differs from the primary's"
    expected = answer.expected_headers()
    names = {n for n, _ in expected}
    added = {b"date", b"server"} - names
    got = []
    for name, value in reply.headers:
        if name in HOP_BY_HOP:
            assert name == b"connection" and value in (b"close", b"keep-alive"), f"hop-by-hop {name!r}: {value!r}"
        elif name == b"content-length" or name in added or \
                (name == b"content-type" and b"content-type" not in names and value == b"application/octet-stream"):
            continue
        else:
            got.append((name, value))
    assert got == expected, f"fields differ from the primary's:\n got {_short(got)}\nwant {_short(expected)}"


def _assert_forwarded(copy: Received, call: Call, command: bool, shadow: bool) -> None:
    """The upstream received the caller's request: method, target, body, fields (minus hop-by-hop), in order."""
    assert copy.method.decode() == call.method and copy.target.decode("latin-1") == call.origin, \
        f"received {copy.method!r} {copy.target!r}, the caller sent {call.method} {call.origin}"
    assert copy.body == call.body, f"received a body of {len(copy.body)} bytes, the caller sent {len(call.body)}"
    assert len(copy.all(b"host")) == 1 and not copy.all(b"transfer-encoding")
    replaced = {b"x-dispatch-token", b"x-shadow"} if command else {b"x-shadow"}
    # The mark the proxy puts on mirrors only: the primary never gets the caller's.
    assert copy.all(b"x-shadow") == ([b"1"] if shadow else []), f"x-shadow {copy.all(b'x-shadow')!r}"
    if command:
        (token,) = copy.all(b"x-dispatch-token")
        sent = call.first(b"x-dispatch-token")
        # A token that is not UTF-8 goes on as the pair stores it, with U+FFFD for the bytes that are not.
        sent = sent.decode("utf-8", "replace").encode() if sent else sent
        assert token == sent if sent else len(token) == 36, f"token {token!r}, the caller sent {sent!r}"
    got = [(n.lower(), v) for n, v in copy.headers if n.lower() not in {b"host", b"content-length"} | replaced]
    want = [(n, v) for n, v in call.forwarded() if n not in replaced]
    assert got == want, f"fields forwarded differ:\n got {_short(got)}\nwant {_short(want)}"


def check(h: Harness, call: Call, answer: Answer, shadow: Answer, well_formed: bool, follow_up: bool = False) -> None:
    """One request through the proxy, and every property that must hold after it."""
    h.legacy.answer, h.new.answer = answer, shadow
    for recorded in (h.legacy.received, h.new.received, h.sink.pairs, h.log.records):
        recorded.clear()  # this example's only (and memory stays flat over 50,000)
    before = h.counters()
    reply, health = h.loop.run_until_complete(h.example(call))
    after = h.counters()
    delta = {k: after[k] - before[k] for k in after}
    legacy, new, pairs, records = h.legacy.received, h.new.received, h.sink.pairs, h.log.records

    # Never crashes: still healthy, workers alive, no exception logged but the server layer's 400s.
    assert health is not None and health.status == 200 and (_json(health) or {}).get("status") == "ok", \
        "the proxy stopped answering /-/health"
    assert not any(t.done() for t in h.proxy._tasks), "a mirror worker died"
    for level, name, exception, text in records:
        refused = exception is not None and issubclass(exception, HttpProcessingError) and name == "aiohttp.server"
        # aiohttp's own Expect handler (for requests no route takes) fails on bytes that are not UTF-8.
        known = exception is UnicodeEncodeError and call.to_the_proxy and call.odd_expect
        assert not (level >= logging.ERROR and not (refused and call.defects) and not known), f"logged: {text}"
        # Never logs a secret (the records as the CLI's handler writes them).
        assert not any(secret in text for secret in SECRETS), f"a secret in the log: {text}"
    assert not h.legacy.unparseable and not h.new.unparseable, "the proxy sent an upstream something not HTTP/1.1"

    copies = [r for r in legacy if not _is_read_back(r)]
    shadow_copies = [r for r in new if not _is_read_back(r)]
    if call.hang_up is not None:
        # A request the caller never finished reaches no upstream, not even in part, and is not answered.
        assert not legacy and not new and not pairs and delta["mirrored"] == 0, \
            f"a request cut after {call.hang_up} bytes reached {[r.target for r in legacy + new]}"
        return
    assert reply is not None, "the proxy closed the connection without an answer"
    command = call.command()
    if copies:
        # The primary was reached: the caller gets its answer (or 502 when it had none that is HTTP).
        assert len(copies) == 1 or (answer.kind == "close" and len(copies) == 2), f"the primary got {len(copies)} copies"
        if answer.reaches_caller:
            _assert_primary_answer(reply, answer, call)
        elif answer.kind == "lenient" and reply.status == answer.status:
            pass
        else:
            _proxy_error(reply, 502, "primary legacy at", head=call.method == "HEAD")
            assert delta["primary_errors"] == 1
        if well_formed:
            _assert_forwarded(copies[0], call, command is not None, shadow=False)
    else:
        # Not reached: only the answers the proxy (or its server layer) may give of its own.
        path = call.origin.split("?", 1)[0].split("#", 1)[0]
        if reply.status == 413:
            assert call.over_limit and delta["too_large"] == 1, "413 for a body within the limit"
            _proxy_error(reply, 413, f"request body over {MAX_BODY} bytes", head=call.method == "HEAD")
        elif (path, call.method) in ADMIN:
            pass
        elif call.to_the_proxy:
            assert 400 <= reply.status < 500 or call.odd_expect, f"{reply.status} to {call.method} {call.target}"
        else:
            assert reply.status == 400 and call.defects, \
                f"the proxy answered {reply.status} of its own ({reply.body[:200]!r}), not the primary's answer"
        assert not call.over_limit or reply.status in (400, 413) or (path, call.method) in ADMIN

    # Never mirrors what is not a command (nor a command of a legacy-only zone); each command once.
    if copies and call.mirrored():
        assert delta["mirrored"] == 1 and len(pairs) == 1, f"mirrored {delta['mirrored']}, pairs {len(pairs)}"
        assert len(shadow_copies) == 1 or (shadow.kind == "close" and len(shadow_copies) == 2), \
            f"the shadow got {len(shadow_copies)} copies"
        if well_formed:
            _assert_forwarded(shadow_copies[0], call, True, shadow=True)
        route, params, _zone = command
        assert pairs[0].command.kind == route.command
        assert pairs[0].command.keys == {k: params[k] for k in route.keys if k in params}
    else:
        assert delta["mirrored"] == 0 and not pairs and not new, \
            f"{call.method} {call.origin} is no mirrored command, yet the shadow got {[r.target for r in new]}"
    assert delta["commands"] == (1 if copies and command is not None else 0)
    assert all(r.method == b"GET" for r in legacy + new if _is_read_back(r))
    if follow_up:
        # Whatever the primary answered, the next caller gets the next answer: the pooled connection is sane.
        h.legacy.answer = FOLLOW_UP
        again, _ = h.loop.run_until_complete(h.example(NEXT))
        assert again is not None and (again.status, again.body) == (299, b"the next answer"), \
            f"the next caller got {again and (again.status, again.body[:100])}"


# -- what the fuzzer found: each fixed; each example fails on the code before its fix ---------------------

OK = Answer()
READ = Call.of(b"GET /loads/L-1 HTTP/1.1\r\nHost: fuzz.example\r\n\r\n")
_BODY = b'{"zone":"chi","n":1}'
_POST = b"POST /loads/L-1/assign HTTP/1.1\r\nHost: fuzz.example\r\n"
# A body that came in two reads went on as its first read; a body cut by a caller hanging up went on as the part sent.
BODY_IN_TWO_READS = Call.of(_POST + b"Content-Length: 20\r\n\r\n" + _BODY, pieces=(len(_POST) + 30,))
HANG_UP_MID_BODY = Call.of(_POST + b"Content-Length: 20\r\n\r\n" + _BODY, hang_up=len(_POST) + 35)
# The target went on as yarl rendered it: '//x' as '////x', without a bare '?'.
TARGET_AS_SENT = Call.of(b"GET //loads/L-1/assign? HTTP/1.1\r\nHost: fuzz.example\r\n\r\n")
# A path with %0A in it: the catch-all route ('.*') did not match, the router answered 404.
NEWLINE_IN_PATH = Call.of(b"POST /loads/L-%0A/assign HTTP/1.1\r\nHost: fuzz.example\r\nContent-Length: 2\r\n\r\n{}")
# Field values not ASCII went upstream as ISO-8859-1 with '?' for the rest.
FIELDS_NOT_ASCII = Call.of(b"GET /loads/L-1 HTTP/1.1\r\nHost: fuzz.example\r\nX-Driver: Jos\xc3\xa9\r\nX-Legacy: caf\xe9\r\n\r\n")
# A UTF-8 field value of the primary's reached the caller encoded twice.
UTF8_FIELD_ANSWERED = Answer(headers=((b"X-Driver", "José".encode()),))
# A 1xx answer (100 Continue to a caller's Expect, 103 Early Hints) was taken for the answer: the caller hung.
EXPECT_CONTINUE = Call.of(_POST + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}")
EARLY_HINTS = Answer(interim=b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
CONTINUE_THEN_NO_REASON = Answer("lenient", status_line=b"HTTP/1.1 200", interim=b"HTTP/1.1 100 Continue\r\n\r\n")
# Trailer fields of a chunked answer reached the caller as header fields.
TRAILER_ANSWERED = Answer(headers=((b"Trailer", b"X-Checksum"),), framing="chunked", body=b"abc",
                          chunks=b"3\r\nabc\r\n0\r\nX-Checksum: 900150983cd2\r\n\r\n")
# Only the first Connection field was read: the fields a second one names went on.
TWO_CONNECTION_FIELDS = Answer(headers=((b"Connection", b"keep-alive"), (b"Connection", b"X-Hop"), (b"X-Hop", b"1"),
                                        (b"X-Upstream", b"legacy")))
# The server layer decompressed request bodies: gzip went on inflated (Content-Encoding still gzip); not gzip: a 500.
GZIP_BODY = Call.of(_POST + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gzip.compress(_BODY, mtime=0))
                    + gzip.compress(_BODY, mtime=0))
NOT_GZIP_BODY = Call.of(_POST + b"Content-Encoding: gzip\r\nContent-Length: 20\r\n\r\n" + _BODY)
# A dispatch token not UTF-8: its pair could not be written, the mirror was lost (and logged as a failure).
TOKEN_NOT_UTF8 = Call.of(b"DELETE /loads/L-1 HTTP/1.1\r\nHost: fuzz.example\r\nX-Dispatch-Token: tok-\xff\r\n\r\n")
# aiohttp's Expect handler: 417 of its own for another expectation, 500 for one not UTF-8, a traceback for a
# caller gone before its 100 Continue.
EXPECT_OTHER = Call.of(b"GET /loads/L-1 HTTP/1.1\r\nHost: fuzz.example\r\nExpect: something-else\r\n\r\n")
EXPECT_NOT_UTF8 = Call.of(b"GET /loads/L-1 HTTP/1.1\r\nHost: fuzz.example\r\nExpect: \xff\r\n\r\n")
HANG_UP_AFTER_EXPECT = Call.of(_POST + b"Expect: 100-continue\r\nContent-Length: 20\r\n\r\n" + _BODY,
                               hang_up=len(_POST) + 44)
# An admin request whose Authorization is not UTF-8: a 500.
ADMIN_AUTH_NOT_UTF8 = Call.of(b"GET /-/admin/status HTTP/1.1\r\nHost: fuzz.example\r\nAuthorization: Bearer \x80\r\n\r\n")


@example(call=BODY_IN_TWO_READS, answer=OK, shadow=OK)
@example(call=TARGET_AS_SENT, answer=OK, shadow=OK)
@example(call=NEWLINE_IN_PATH, answer=OK, shadow=OK)
@example(call=FIELDS_NOT_ASCII, answer=OK, shadow=OK)
@example(call=EXPECT_CONTINUE, answer=OK, shadow=OK)
@example(call=GZIP_BODY, answer=OK, shadow=OK)
@example(call=NOT_GZIP_BODY, answer=OK, shadow=OK)
@example(call=TOKEN_NOT_UTF8, answer=OK, shadow=OK)
@example(call=EXPECT_NOT_UTF8, answer=OK, shadow=OK)
@example(call=EXPECT_OTHER, answer=OK, shadow=OK)
@example(call=ADMIN_AUTH_NOT_UTF8, answer=OK, shadow=OK)
@given(call=requests(), answer=answers(), shadow=answers(("http", "garbage", "close")))
@examples(0.40)
def test_a_well_formed_request_reaches_the_primary_whole_and_gets_its_answer_exactly(
        harness: Harness, call: Call, answer: Answer, shadow: Answer) -> None:
    check(harness, call, answer, shadow, well_formed=True)


# Found in CI: llhttp takes a PRI request line with no field for HTTP/2's connection preface and waits for the rest;
# the generator now sends such a call whole and hangs up (nothing may reach an upstream; the proxy stays healthy).
_PRI = b"PRI http://fuzz.example/loads/L-0/assign HTTP/1.0\r\n\r\n"
PRI_PREFACE = Call("PRI", "http://fuzz.example/loads/L-0/assign", "HTTP/1.0", [], b"", _PRI,
                   defects=frozenset({"method"}), hang_up=len(_PRI))


@example(call=PRI_PREFACE, answer=OK, shadow=OK)
@given(call=malformed_requests(), answer=answers(), shadow=answers(("http", "garbage", "close")))
@examples(0.20)
def test_a_malformed_request_gets_a_400_of_the_server_layer_or_the_primary_answer(
        harness: Harness, call: Call, answer: Answer, shadow: Answer) -> None:
    check(harness, call, answer, shadow, well_formed=False)


@example(call=READ, answer=UTF8_FIELD_ANSWERED, shadow=OK)
@example(call=READ, answer=EARLY_HINTS, shadow=OK)
@example(call=READ, answer=CONTINUE_THEN_NO_REASON, shadow=OK)
@example(call=READ, answer=TRAILER_ANSWERED, shadow=OK)
@example(call=READ, answer=TWO_CONNECTION_FIELDS, shadow=OK)
@given(call=requests(), answer=answers(("http", "http", "lenient", "garbage", "close")),
       shadow=answers(("http", "lenient", "garbage", "close")))
@examples(0.30)
def test_whatever_the_primary_answers_reaches_the_caller_unchanged_or_as_502(
        harness: Harness, call: Call, answer: Answer, shadow: Answer) -> None:
    check(harness, call, answer, shadow, well_formed=True, follow_up=True)


@example(call=HANG_UP_MID_BODY, answer=OK, shadow=OK)
@example(call=HANG_UP_AFTER_EXPECT, answer=OK, shadow=OK)
@given(call=hang_ups(), answer=answers(), shadow=answers())
@examples(0.10)
def test_a_caller_hanging_up_mid_request_reaches_no_upstream_and_crashes_nothing(
        harness: Harness, call: Call, answer: Answer, shadow: Answer) -> None:
    check(harness, call, answer, shadow, well_formed=False)
