"""`shadow proxy`: the dual-write proxy in front of the dispatch API (DESIGN.md, "How data flows").

Every request goes to the primary target of its zone and the primary's answer
goes back to the caller unchanged. A request that the route table declares a
command is also mirrored to the shadow target — after the primary answered, or
in parallel — through a bounded queue that never makes the caller wait: when it
is full the mirror is dropped and counted. Each mirrored command becomes a Pair
(both outcomes, state read back when the route says how) written to the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict, MultiMapping
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.http import TOKEN_HEADER, decode_body, fill_path
from adapters.http1 import Http1Pool, Http1Response, origin_form
from adapters.jsonl import JsonlCommands, JsonlPairs
from adapters.kafka import lazy_delivery
from adapters.spill import DegradingSink, SpillFile
from adapters.protocols import PairSink
from adapters.sql import SqlStateReader
from cutover.routing import RouteTable, mirrors, primary_of
from rules.compare import Comparator
from rules.normalise import Normaliser
from rules.rulefile import load_rules
from shadow.config import Config, Route, load_config, path_params
from shadow.errors import ShadowError
from shadow.guard import Guard
from shadow.heap import GcPauses, StallWatch, freeze_after_warmup, switch_interval
from shadow.metrics import ProxyMetrics
from shadow.presence import Presence
from shadow.proxy_guard import GuardedZones, failed_outcome, held
from shadow.model import Command, Outcome, Pair, Status, Target, new_token, utcnow
from shadow.replay import RouteStateReader, entity_of, read_state, settle_new_state, states_equal
from shadow.secrets import mask_url

__all__ = ["Proxy", "HOP_BY_HOP", "SHADOW_HEADER"]

log = logging.getLogger("shadow.proxy")
SHADOW_HEADER = "X-Shadow"
FLUSH_SECONDS = 1.0  # JSONL pairs and captured commands reach their files at least this often
# How often the Kafka sink hands the producer what has come. A batch is Python work on the sink's thread, which the
# event loop waits behind for the GIL at every I/O call: 25 pairs every 50 ms rather than 125 every 250 ms keep each
# wait short (soak, 500 commands/s, 3 minutes each: caller p99 9.2 → 7.4 ms).
KAFKA_BATCH_AGE_S = 0.05
# A command on an entity whose previous command's state the proxy is still reading back from the primary waits
# for that read (at most this long): otherwise it can overtake the read, which then records its state instead.
READ_BACK_HOLD_S = 1.0
# RFC 9110 §7.6.1: connection-specific fields are not forwarded (nor any field Connection names).
HOP_BY_HOP = frozenset({"connection", "proxy-connection", "keep-alive", "te", "trailer", "transfer-encoding",
                        "upgrade", "proxy-authenticate", "proxy-authorization"})
# Recomputed for the new message by whoever sends it.
_RECOMPUTED = frozenset({"host", "content-length"})


_DROP = HOP_BY_HOP | _RECOMPUTED
# The caller's own headers are forwarded as they came; the client adds none of its own.
_NO_AUTO = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


def _field_text(value: bytes) -> str:
    # aiohttp writes header values as UTF-8: a UTF-8 value passes byte for byte; obs-text that is not UTF-8
    # cannot, and is read as ISO-8859-1.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _header_dict(raw: list[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    return CIMultiDict((name.decode("latin-1"), _field_text(value)) for name, value in raw)


def forwardable(headers: MultiMapping[str]) -> CIMultiDict[str]:
    """Headers without hop-by-hop fields (and without Host and Content-Length, set anew)."""
    connection = headers.getall("Connection", ())  # every Connection field names some: not only the first
    drop = _DROP | {v.strip().lower() for field in connection for v in field.split(",")} if connection else _DROP
    return CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in drop])


@dataclass
class _Mirror:
    command: Command
    route: Route
    primary: Target
    shadow: Target
    method: str
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes
    primary_outcome: asyncio.Future[Outcome]
    error: str | None
    before: asyncio.Future[None] | None = None      # the previous mirror of the same entity
    done: asyncio.Future[None] | None = None
    primary_state: asyncio.Task[None] | None = None  # the primary's state, read as soon as it answered


def _latest(table: dict[tuple[str, str], Any], entity: tuple[str, str], future: asyncio.Future[None]) -> None:
    """Record `future` as the entity's latest, until it is done (unless a later one has replaced it by then)."""
    table[entity] = future
    future.add_done_callback(lambda f: table.get(entity) is f and table.pop(entity))


class _HttpReadBack:
    """A StateReader: the route's GET on one target, through the proxy's own client session."""

    def __init__(self, proxy: "Proxy", target: Target) -> None:
        self._proxy, self.target = proxy, target

    async def read(self, command: Command) -> Any:
        route = self._proxy.config.route_for(command.kind)
        if route is None or route.read_path is None:
            return None
        config = self._proxy.config.targets[self.target.value]
        path = fill_path(route.read_path, command, path_params(route.read_path))
        headers = {**config.headers, TOKEN_HEADER: command.token or "", SHADOW_HEADER: "1"}
        session = self._proxy._session
        assert session is not None
        try:
            async with session.get(config.url + path, headers=headers,
                                   timeout=self._proxy._timeouts[self.target]) as upstream:
                raw = await upstream.read()
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ShadowError(f"state read-back GET {path} failed: {type(exc).__name__}") from None
        if upstream.status != 200:
            raise ShadowError(f"state read-back GET {path} answered {upstream.status}")
        return decode_body(raw)

    async def close(self) -> None:
        """The session is the proxy's."""


class Proxy(GuardedZones):
    """One proxy process: an aiohttp application with its mirror workers and route table."""

    def __init__(self, config: Config, *, admin_token: str | None = None, capture: Path | None = None,
                 sink: PairSink | None = None, address: str | None = None, own_process: bool = False) -> None:
        self.config = config
        # A process of its own (`shadow proxy`): freeze the heap, time the collections, hand the GIL back sooner,
        # watch the event loop for stalls.
        self._own_process = own_process
        self._gc_pauses: GcPauses | None = None
        self._switch_interval: float | None = None
        self.address = address or config.proxy.listen
        self.table = RouteTable.from_config(config)
        self.metrics = ProxyMetrics()
        self.metrics.table_version.set(self.table.number)
        self._admin_token = admin_token.encode() if admin_token else None
        self._capture_path = capture
        self._sink = sink
        self._queue: asyncio.Queue[_Mirror] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pools: dict[Target, Http1Pool] = {}
        self._readers: dict[Target, RouteStateReader] = {}
        self._reading: dict[tuple[str, str], asyncio.Task[None]] = {}  # entity → its primary read-back in flight
        self._normaliser = Normaliser()
        self._timeouts: dict[Target, aiohttp.ClientTimeout] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._capture: JsonlCommands | None = None
        self._comparator: Comparator | None = None
        self._matched = self._compared = 0
        self._last: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._config_stamp = self._stamp()
        self.presence: Presence | None = None
        self._reloaded = asyncio.Event()  # set (and replaced) each time a new route table is in force
        self._flip_held = 0
        guard = config.cutover.guard
        self.guard = Guard(trip_after_s=guard.trip_after_s, hold_max_s=guard.hold_max_s, hold_max=guard.hold_max,
                           on_trip=self._tripped, on_window=self._window)

    # -- lifecycle -------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application: admin endpoints under /-/, everything else proxied."""
        # Bodies pass through as the caller sent them: never decompressed (a Content-Encoding goes on with them).
        app = web.Application(client_max_size=self.config.proxy.max_body + 1, handler_args={"auto_decompress": False})
        expect = {"expect_handler": self._expect}
        app.router.add_get("/-/health", self._health, **expect)
        app.router.add_get("/-/metrics", self._metrics, **expect)
        if self.config.proxy.admin:
            app.router.add_get("/-/admin/status", self._status, **expect)
            app.router.add_post("/-/admin/reload", self._reload, **expect)
        else:
            app.router.add_route("*", r"/-/admin/{tail:[\s\S]*}", self._admin_off, **expect)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle, **expect)  # any path: '.' stops at a %0A
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._drain)
        app.on_cleanup.append(self._close)
        return app

    async def _start(self, _app: web.Application) -> None:
        proxy = self.config.proxy
        self._queue = asyncio.Queue(maxsize=proxy.queue)
        self.metrics.queue_depth.set_function(lambda: self._queue.qsize() if self._queue else 0)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        # Bodies pass through as bytes: never decompress what the caller must receive unchanged.
        # No cookie jar: a proxy passes cookies through, it does not keep them (and the jar costs CPU per request).
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                              cookie_jar=aiohttp.DummyCookieJar())
        self._timeouts = {t: aiohttp.ClientTimeout(total=self.config.targets[t.value].timeout) for t in Target}
        # The hot path's two upstream requests per command go through the lean client where it applies (http://).
        self._pools = {t: Http1Pool(self.config.targets[t.value].url) for t in Target
                       if self.config.targets[t.value].url.startswith("http://")}
        if self._sink is None:
            self._sink = self._default_sink()
        if self._capture_path is not None:
            self._capture = JsonlCommands(self._capture_path)
        normaliser = Normaliser(load_rules(self.config.store.rules).steps)
        if proxy.compare:
            self._comparator = Comparator(normaliser)
        self._normaliser = normaliser
        self._readers = {t: RouteStateReader(self._sql_reader(t), _HttpReadBack(self, t)) for t in Target}
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(proxy.concurrency)]
        if self.config.source is not None:
            self._tasks.append(asyncio.create_task(self._watch()))
        self._tasks.append(asyncio.create_task(self._probe()))
        self._tasks.append(asyncio.create_task(self._flush_files()))
        if self._own_process:
            self._gc_pauses = GcPauses(self.metrics.gc_pause).install()
            self._tasks.append(asyncio.create_task(freeze_after_warmup()))
            self._tasks.append(asyncio.create_task(StallWatch(self.metrics.loop_lag).run()))
            self._switch_interval = switch_interval()
        if proxy.registry:
            self.presence = Presence(self.config.store.url.reveal(), self.address, lambda: self.table.version,
                                     self.guard.snapshot, self._pushed)
            await self.presence.start()

    async def _flush_files(self) -> None:
        """Pairs and captured commands written to files reach them within a second, not only at shutdown."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            for file in (self._sink, self._capture):
                if isinstance(file, (JsonlPairs, JsonlCommands)):
                    file.flush()

    def _sql_reader(self, target: Target) -> SqlStateReader | None:
        url = self.config.targets[target.value].state
        return SqlStateReader(target, url.reveal(), self.config.routes) if url is not None else None

    def _default_sink(self) -> PairSink:
        proxy = self.config.proxy
        # One spill file per sink and listening address: a proxy restarted on its address drains its own.
        spill = SpillFile(proxy.spill_dir / f"{proxy.sink}-{self.address.replace(':', '-')}.spill")
        if proxy.sink == "catalogue":
            from shadow.pipeline import CatalogueSink

            return CatalogueSink(self.config.store.url.reveal(), rules_folder=self.config.store.rules,
                                 queue=proxy.buffer, spill=spill)
        if proxy.sink == "kafka":
            deliver = lazy_delivery(self.config.kafka.bootstrap or "", self.config.kafka.pairs)
            return DegradingSink("kafka", deliver, spill, buffer=proxy.buffer, max_age=KAFKA_BATCH_AGE_S)
        return JsonlPairs(proxy.pairs, append=True)

    async def _drain(self, _app: web.Application) -> None:
        """Graceful shutdown: mirrors already queued are finished, up to the drain deadline."""
        if self._queue is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout=self.config.proxy.drain_seconds)
        except asyncio.TimeoutError:
            log.warning("shutdown: %d mirror(s) still queued after %.1fs; dropped",
                        self._queue.qsize(), self.config.proxy.drain_seconds)
            self.metrics.dropped.labels("shutdown").inc(self._queue.qsize())

    async def _close(self, _app: web.Application) -> None:
        if self._gc_pauses is not None:
            self._gc_pauses.remove()
        if self._switch_interval is not None:
            switch_interval(self._switch_interval)
        if self.presence is not None:
            await self.presence.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for reader in self._readers.values():
            await reader.close()
        for pool in self._pools.values():
            pool.close()
        if self._session is not None:
            await self._session.close()
        if self._sink is not None:
            # Storing what is left may take a moment (the catalogue sink's thread): not on the loop.
            await asyncio.get_running_loop().run_in_executor(None, self._sink.close)
        if self._capture is not None:
            self._capture.close()

    # -- the hot path ----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
        except ConnectionResetError:  # the caller hung up before its body was complete: nothing to forward
            return web.Response(status=400)
        if body is None:
            self.metrics.too_large.inc()
            return web.json_response({"error": f"request body over {self.config.proxy.max_body} bytes"}, status=413)
        table = self.table  # one table for the whole request, even if a reload lands meanwhile
        matched = table.match(request.method, request.path)
        headers = forwardable(request.headers)
        # The proxy's mark on its mirrors, never the caller's to set: a primary that honoured it would take a
        # real command for a mirror (and skip its side effects).
        headers.popall(SHADOW_HEADER, None)
        if matched is None:
            self.metrics.unmatched.inc()
            response, _ = await self._forward(primary_of(table.mode(None)), request.method, origin_form(request.raw_path),
                                              headers, body)
            return response
        route, params = matched
        command, error = self._command(route, params, body, request.headers)
        headers[TOKEN_HEADER] = command.token or ""
        entity = entity_of(command)
        reading = self._reading.get(entity) if entity is not None else None
        if reading is not None:  # the caller's previous command on this entity: its state is being read back
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(reading), READ_BACK_HOLD_S)
        if table.routing.hold and command.zone and held(table, command.zone):
            table = await self._until_released(command.zone)
        mode = table.mode(command.zone, route.command)
        guarded = mode in ("reverse", "new")
        if guarded and self.guard.tripped(command.zone, table.version):
            mode, guarded = "shadow", False  # the guard switched this zone back to legacy
        primary = primary_of(mode)
        self.metrics.commands.inc()
        mirrored = mirrors(mode)
        if mirrored and route.sample < 1.0 and random.random() >= route.sample:
            self.metrics.sampled_out.inc()
            mirrored = False
        mirror = None
        # A guarded command may end on the other side: its mirror waits to know which one is primary.
        if mirrored and self.config.proxy.mirror == "parallel" and not guarded:
            mirror = self._new_mirror(command, route, primary, request, headers, body, error)
            self._enqueue(mirror)
        response, outcome = await self._forward(primary, request.method, origin_form(request.raw_path), headers, body)
        if guarded:
            response, outcome, primary = await self._guarded(command.zone, request, headers, body, response, outcome)
        elif self.guard.zones and not failed_outcome(outcome):
            self.guard.succeeded(command.zone)  # closes a window the guard's trip left open
        if mirrored and mirror is None:
            mirror = self._new_mirror(command, route, primary, request, headers, body, error)
        if mirror is not None:
            mirror.primary_outcome.set_result(outcome)
            if route.read or route.state is not None:
                # Read the primary's state now, not when a worker gets to it: the caller's next
                # command on this entity may come soon (and waits for this read, not for the mirror).
                mirror.primary_state = asyncio.create_task(read_state(self._readers[primary], command, outcome))
                if entity is not None:  # the next command on this entity waits for this read (READ_BACK_HOLD_S)
                    _latest(self._reading, entity, mirror.primary_state)
            if mirror.done is None:
                self._enqueue(mirror)
        if self._capture is not None:
            self._capture.write(command)
        return response

    @staticmethod
    async def _expect(request: web.Request) -> None:
        """Expect: 100-continue is met here (the whole body is read before it is forwarded); any other expectation
        goes on to the primary, to meet or refuse (aiohttp's default answers 417, or 500 for bytes not UTF-8)."""
        if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
            with contextlib.suppress(ConnectionResetError):  # the caller hung up: the handler finds out reading
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                request.writer.output_size = 0  # as aiohttp's own handler: the answer has not started

    @staticmethod
    def _new_mirror(command: Command, route: Route, primary: Target, request: web.Request, headers: CIMultiDict[str],
                    body: bytes, error: str | None) -> _Mirror:
        return _Mirror(command, route, primary, primary.other, request.method, origin_form(request.raw_path), headers, body,
                       asyncio.get_running_loop().create_future(), error)

    async def _body(self, request: web.Request) -> bytes | None:
        limit = self.config.proxy.max_body
        if request.content_length is not None and request.content_length > limit:
            return None
        # read() returns what has arrived so far: a body that comes in several reads takes several.
        chunks = [await request.content.read(limit + 1)]
        size = len(chunks[0])
        while chunks[-1] and size <= limit and not request.content.at_eof():
            chunks.append(await request.content.read(limit + 1 - size))
            size += len(chunks[-1])
        return None if size > limit else b"".join(chunks)

    def _command(self, route: Route, params: dict[str, str], body: bytes,
                 headers: Mapping[str, str]) -> tuple[Command, str | None]:
        payload: Any = None
        error = None
        if body:
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                error = f"request body is not JSON: {exc}"
                self.metrics.parse_errors.inc()
                payload = body.decode("utf-8", errors="replace")
        fields = payload if isinstance(payload, dict) else {}
        keys = {k: str(params[k] if k in params else fields[k]) for k in route.keys if k in params or k in fields}
        zone = params.get(route.zone, fields.get(route.zone))
        token = headers.get(TOKEN_HEADER)
        if token and not token.isascii():  # bytes that are not UTF-8 (kept as surrogates) cannot be stored in a pair
            token = token.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        command = Command(kind=route.command, payload=payload, keys=keys,
                          zone=str(zone).lower() if zone is not None else None,
                          token=token or new_token(), received_at=utcnow())
        return command, error

    async def _send(self, target: Target, method: str, path_qs: str, headers: CIMultiDict[str],
                    body: bytes) -> Http1Response:
        """One request to an upstream: the lean pooled client for http://, aiohttp's for anything else."""
        pool = self._pools.get(target)
        timeout = self.config.targets[target.value].timeout
        if pool is not None:
            return await pool.request(method, path_qs, headers.items(), body, timeout)
        assert self._session is not None
        async with self._session.request(method, self.config.targets[target.value].url + path_qs, headers=headers,
                                         data=body or None, allow_redirects=False, timeout=self._timeouts[target],
                                         skip_auto_headers=_NO_AUTO) as upstream:
            return Http1Response(upstream.status, upstream.reason or "", list(upstream.raw_headers),
                                 await upstream.read())

    async def _forward(self, target: Target, method: str, path_qs: str, headers: CIMultiDict[str],
                       body: bytes) -> tuple[web.Response, Outcome]:
        config = self.config.targets[target.value]
        started = time.perf_counter()
        try:
            upstream = await self._send(target, method, path_qs, headers, body)
            seconds = time.perf_counter() - started
            response = web.Response(status=upstream.status, reason=upstream.reason or None, body=upstream.body,
                                    headers=forwardable(_header_dict(upstream.headers)))
            status = Status.OK if upstream.status < 400 else Status.ERROR
            outcome = Outcome(target=target, status=status, http_status=upstream.status,
                              response=decode_body(upstream.body), latency_ms=seconds * 1000)
        except asyncio.TimeoutError:
            seconds = time.perf_counter() - started
            self.metrics.primary_errors.inc()
            message = f"primary {target.value} gave no answer within {config.timeout:g}s"
            response = web.json_response({"error": message}, status=504)
            outcome = Outcome(target=target, status=Status.TIMEOUT, error=message, latency_ms=seconds * 1000)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            seconds = time.perf_counter() - started
            self.metrics.primary_errors.inc()
            message = f"primary {target.value} at {mask_url(config.url)} cannot be reached: {type(exc).__name__}"
            response = web.json_response({"error": message}, status=502)
            outcome = Outcome(target=target, status=Status.ERROR, error=message, latency_ms=seconds * 1000)
        self.metrics.primary_latency.observe(seconds)
        return response, outcome

    def _enqueue(self, mirror: _Mirror) -> None:
        assert self._queue is not None
        entity = entity_of(mirror.command)
        mirror.done = asyncio.get_running_loop().create_future()
        mirror.before = self._last.get(entity) if entity is not None else None
        try:
            self._queue.put_nowait(mirror)
        except asyncio.QueueFull:
            self.metrics.dropped.labels("queue_full").inc()  # never make the caller wait for the shadow
            mirror.done.set_result(None)
            return
        if entity is not None:
            # Mirrors of one entity reach the shadow in the order the primary saw them.
            _latest(self._last, entity, mirror.done)

    # -- mirrors, off the hot path ---------------------------------------------------

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            mirror = await self._queue.get()
            try:
                if mirror.before is not None:
                    await asyncio.shield(mirror.before)
                await self._mirror(mirror)
            except Exception:  # one bad mirror must never stop the worker
                log.exception("mirror of %s %s failed", mirror.command.kind, mirror.command.token)
                self.metrics.dropped.labels("internal_error").inc()
            finally:
                if mirror.done is not None and not mirror.done.done():
                    mirror.done.set_result(None)
                self._queue.task_done()

    async def _mirror(self, mirror: _Mirror) -> None:
        headers = CIMultiDict(mirror.headers)
        headers[SHADOW_HEADER] = "1"
        _, shadow_outcome = await self._send_shadow(mirror, headers)
        primary_outcome = await mirror.primary_outcome
        outcomes = {mirror.primary: primary_outcome, mirror.shadow: shadow_outcome}
        if mirror.primary_state is not None:
            await mirror.primary_state
        state = mirror.route.state
        reader = self._readers[mirror.shadow]
        if state is not None and state.settle > 0 and mirror.shadow is Target.NEW:
            await settle_new_state(reader, mirror.command, primary_outcome, shadow_outcome, state,
                                   states_equal(self._normaliser, mirror.command.kind))
        elif mirror.route.read or state is not None:
            await read_state(reader, mirror.command, shadow_outcome)
        pair = Pair(command=mirror.command, legacy=outcomes[Target.LEGACY], new=outcomes[Target.NEW],
                    primary=mirror.primary, error=mirror.error)
        assert self._sink is not None
        self._sink.write(pair)
        if self._comparator is not None:
            self._compared += 1
            matched = self._comparator.compare(pair).matched
            self._matched += int(matched)
            self.metrics.compared.labels("match" if matched else "mismatch").inc()
            self.metrics.match_rate.set(self._matched / self._compared)

    async def _send_shadow(self, mirror: _Mirror, headers: CIMultiDict[str]) -> tuple[int | None, Outcome]:
        config = self.config.targets[mirror.shadow.value]
        self.metrics.mirrored.inc()
        started = time.perf_counter()
        try:
            upstream = await self._send(mirror.shadow, mirror.method, mirror.path_qs, headers, mirror.body)
            status = Status.OK if upstream.status < 400 else Status.ERROR
            outcome = Outcome(target=mirror.shadow, status=status, http_status=upstream.status,
                              response=decode_body(upstream.body), latency_ms=(time.perf_counter() - started) * 1000)
        except asyncio.TimeoutError:
            outcome = Outcome(target=mirror.shadow, status=Status.TIMEOUT,
                              error=f"no answer within {config.timeout:g}s",
                              latency_ms=(time.perf_counter() - started) * 1000)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            outcome = Outcome(target=mirror.shadow, status=Status.ERROR, error=f"{type(exc).__name__}: {exc}",
                              latency_ms=(time.perf_counter() - started) * 1000)
        self.metrics.by_status[outcome.status].inc()
        self.metrics.shadow_latency.observe(outcome.latency_ms / 1000)
        return outcome.http_status, outcome

    # -- admin -----------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "route_table": self.table.version})

    async def _metrics(self, _request: web.Request) -> web.Response:
        sink = self._sink
        if isinstance(sink, DegradingSink):
            metrics = self.metrics
            metrics.pairs_buffered.set(sink.buffered)
            metrics.pairs_spilled.set(sink.spilled)
            metrics.pairs_drained.set(sink.drained)
            metrics.sink_degraded.set(int(sink.degraded_since is not None))
            for reason, n in sink.dropped.items():
                metrics.pairs_dropped.labels(reason).set(n)
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _admin_off(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "admin endpoints are off ([proxy] admin = false)"}, status=404)

    def _authorised(self, request: web.Request) -> bool:
        if self._admin_token is None:
            return False  # no token configured: admin endpoints stay closed
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip().encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self._admin_token)

    async def _status(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "unauthorised: send Authorization: Bearer <admin token>"}, status=401)
        assert self._queue is not None
        return web.json_response({
            "route_table": self.table.version, "routes": len(self.table.routes), "queue": self._queue.qsize(),
            "mirror": self.config.proxy.mirror, "compared": self._compared, "matched": self._matched,
            "instance": self.presence.instance if self.presence else None,
        })

    async def _reload(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "unauthorised: send Authorization: Bearer <admin token>"}, status=401)
        try:
            changed = self.reload()
        except ShadowError as exc:
            return web.json_response({"error": str(exc), "route_table": self.table.version}, status=422)
        return web.json_response({"route_table": self.table.version, "changed": changed})

    # -- the route table -------------------------------------------------------------

    def _stamp(self) -> tuple[float, int] | None:
        source = self.config.source
        if source is None:
            return None
        try:
            stat = Path(source).stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def reload(self) -> bool:
        """Re-read the config file; a changed route table replaces the old one between requests."""
        if self.config.source is None:
            raise ShadowError("this proxy was started without a config file to reload")
        config = load_config(self.config.source)
        table = RouteTable.from_config(config)
        if table.digest == self.table.digest:
            return False
        self.config = self.config.model_copy(update={"routes": config.routes, "routing": config.routing})
        self.table = table  # requests in flight keep the table they started with
        self.metrics.table_version.set(table.number)
        self._reloaded.set()
        self._reloaded = asyncio.Event()
        log.warning("route table %s in force", table.version)
        return True

    def _pushed(self, version: str) -> None:
        """A flip was pushed (Postgres NOTIFY): apply it now rather than at the next look at the file."""
        if version == self.table.version:
            return
        try:
            self.reload()
        except ShadowError as exc:
            log.error("pushed route table %s not applied, %s stays: %s", version, self.table.version, exc)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.proxy.reload_seconds)
            stamp = self._stamp()
            if stamp is None or stamp == self._config_stamp:
                continue
            self._config_stamp = stamp
            try:
                self.reload()
            except ShadowError as exc:
                log.error("config change not applied, route table %s stays: %s", self.table.version, exc)
