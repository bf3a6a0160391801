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
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from adapters.http import TOKEN_HEADER, decode_body, fill_path
from adapters.jsonl import JsonlCommands, JsonlPairs
from adapters.protocols import PairSink
from adapters.sql import SqlStateReader
from cutover.routing import RouteTable, mirrors, primary_of
from shadow.guard import Guard, Window
from shadow.presence import Presence
from rules.compare import Comparator
from rules.normalise import Normaliser
from rules.rulefile import load_rules
from shadow.config import Config, Route, load_config, path_params
from shadow.errors import ShadowError
from shadow.model import Command, Outcome, Pair, Status, Target, new_token, utcnow
from shadow.replay import RouteStateReader, read_state, settle_new_state, states_equal
from shadow.secrets import mask_url

__all__ = ["Proxy", "HOP_BY_HOP", "SHADOW_HEADER"]

log = logging.getLogger("shadow.proxy")
SHADOW_HEADER = "X-Shadow"
# RFC 9110 §7.6.1: connection-specific fields are not forwarded (nor any field Connection names).
HOP_BY_HOP = frozenset({"connection", "proxy-connection", "keep-alive", "te", "trailer", "transfer-encoding",
                        "upgrade", "proxy-authenticate", "proxy-authorization"})
# Recomputed for the new message by whoever sends it.
_RECOMPUTED = frozenset({"host", "content-length"})


_DROP = HOP_BY_HOP | _RECOMPUTED
# The caller's own headers are forwarded as they came; the client adds none of its own.
_NO_AUTO = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


def _held(table: RouteTable, zone: str) -> bool:
    wanted = zone.casefold()
    return any(z.casefold() == wanted for z in table.routing.hold)


def _failed(outcome: Outcome) -> bool:
    """The target did not do its job: no answer, unreachable, or a 5xx (a 4xx is the target's own decision)."""
    return outcome.status is Status.TIMEOUT or (outcome.status is Status.ERROR and
                                                (outcome.http_status is None or outcome.http_status >= 500))


def forwardable(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """Headers without hop-by-hop fields (and without Host and Content-Length, set anew)."""
    connection = headers.get("Connection")
    drop = _DROP | {v.strip().lower() for v in connection.split(",")} if connection else _DROP
    return CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in drop])


class ProxyMetrics:
    """What `GET /-/metrics` shows, in a registry of the proxy's own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("shadow_proxy_requests", "Requests received, by what the route table made of them",
                                ["kind"], registry=registry)
        self.mirrored = Counter("shadow_proxy_mirrored", "Commands sent to the shadow target", registry=registry)
        self.dropped = Counter("shadow_proxy_mirror_dropped", "Mirrors not sent, by reason", ["reason"],
                               registry=registry)
        self.sampled_out = Counter("shadow_proxy_mirror_sampled_out", "Commands not mirrored by a route's sample rate",
                                   registry=registry)
        self.shadow_outcomes = Counter("shadow_proxy_shadow_outcomes", "Shadow answers by status", ["status"],
                                       registry=registry)
        self.primary_latency = Histogram("shadow_proxy_primary_latency_seconds", "Primary round trip",
                                         registry=registry, buckets=_BUCKETS)
        self.shadow_latency = Histogram("shadow_proxy_shadow_latency_seconds", "Shadow round trip",
                                        registry=registry, buckets=_BUCKETS)
        self.compared = Counter("shadow_proxy_pairs_compared", "Pairs compared inline, by result", ["result"],
                                registry=registry)
        self.match_rate = Gauge("shadow_proxy_match_rate", "Matched / compared pairs since start", registry=registry)
        self.too_large = Counter("shadow_proxy_body_too_large", "Requests answered 413", registry=registry)
        self.parse_errors = Counter("shadow_proxy_parse_errors", "Command bodies that were not JSON", registry=registry)
        self.primary_errors = Counter("shadow_proxy_primary_unreachable", "Requests answered 502/504 by the proxy",
                                      registry=registry)
        self.table_version = Gauge("shadow_proxy_route_table_version", "Route-table version number in force",
                                   registry=registry)
        self.held = Counter("shadow_proxy_guard_held", "Commands held by the guard, by how the hold ended",
                            ["resolution"], registry=registry)
        self.trips = Counter("shadow_proxy_guard_trips", "Zones the guard switched back to legacy", registry=registry)
        self.flip_held = Counter("shadow_proxy_flip_held", "Commands held while a flip of their zone propagated",
                                 registry=registry)
        self.unavailable = Histogram("shadow_proxy_unavailability_seconds", "Unavailability windows (first failed or "
                                     "held command to first success)", registry=registry,
                                     buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60))
        self.queue_depth = Gauge("shadow_proxy_mirror_queue_depth", "Mirrors waiting", registry=registry)
        # Children looked up once: labels() costs a few microseconds per call on the hot path.
        self.commands = self.requests.labels("command")
        self.unmatched = self.requests.labels("unmatched")
        self.by_status = {status: self.shadow_outcomes.labels(status.value) for status in Status}


_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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


class Proxy:
    """One proxy process: an aiohttp application with its mirror workers and route table."""

    def __init__(self, config: Config, *, admin_token: str | None = None, capture: Path | None = None,
                 sink: PairSink | None = None, address: str | None = None) -> None:
        self.config = config
        self.address = address or config.proxy.listen
        self.table = RouteTable.from_config(config)
        self.metrics = ProxyMetrics()
        self.metrics.table_version.set(self.table.number)
        self._admin_token = admin_token.encode() if admin_token else None
        self._capture_path = capture
        self._sink = sink
        self._queue: asyncio.Queue[_Mirror] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._readers: dict[Target, RouteStateReader] = {}
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
        app = web.Application(client_max_size=self.config.proxy.max_body + 1)
        app.router.add_get("/-/health", self._health)
        app.router.add_get("/-/metrics", self._metrics)
        app.router.add_get("/-/admin/status", self._status)
        app.router.add_post("/-/admin/reload", self._reload)
        app.router.add_route("*", "/{tail:.*}", self._handle)
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
        if proxy.registry:
            self.presence = Presence(self.config.store.url.reveal(), self.address, lambda: self.table.version,
                                     self.guard.snapshot, self._pushed)
            await self.presence.start()

    def _sql_reader(self, target: Target) -> SqlStateReader | None:
        url = self.config.targets[target.value].state
        return SqlStateReader(target, url.reveal(), self.config.routes) if url is not None else None

    def _default_sink(self) -> PairSink:
        if self.config.proxy.sink == "catalogue":
            from rules.catalogue import open_catalogue
            from shadow.pipeline import CatalogueSink

            catalogue = open_catalogue(self.config.store.url.reveal())
            return CatalogueSink(catalogue, rules_folder=self.config.store.rules, queue=self.config.proxy.queue * 10)
        if self.config.proxy.sink == "kafka":
            from adapters.kafka import KafkaPairs

            assert self.config.kafka.bootstrap is not None  # validated with the config
            return KafkaPairs(self.config.kafka.bootstrap, self.config.kafka.pairs)
        return JsonlPairs(self.config.proxy.pairs, append=True)

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
        if self.presence is not None:
            await self.presence.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for reader in self._readers.values():
            await reader.close()
        if self._session is not None:
            await self._session.close()
        if self._sink is not None:
            # Storing what is left may take a moment (the catalogue sink's thread): not on the loop.
            await asyncio.get_running_loop().run_in_executor(None, self._sink.close)
        if self._capture is not None:
            self._capture.close()

    # -- the hot path ----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if body is None:
            self.metrics.too_large.inc()
            return web.json_response({"error": f"request body over {self.config.proxy.max_body} bytes"}, status=413)
        table = self.table  # one table for the whole request, even if a reload lands meanwhile
        matched = table.match(request.method, request.path)
        headers = forwardable(request.headers)
        if matched is None:
            self.metrics.unmatched.inc()
            response, _ = await self._forward(primary_of(table.mode(None)), request.method, request.path_qs, headers, body)
            return response
        route, params = matched
        command, error = self._command(route, params, body, request.headers)
        headers[TOKEN_HEADER] = command.token or ""
        if table.routing.hold and command.zone and _held(table, command.zone):
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
        response, outcome = await self._forward(primary, request.method, request.path_qs, headers, body)
        if guarded:
            response, outcome, primary = await self._guarded(command.zone, request, headers, body, response, outcome)
        elif self.guard.zones and not _failed(outcome):
            self.guard.succeeded(command.zone)  # closes a window the guard's trip left open
        if mirrored and mirror is None:
            mirror = self._new_mirror(command, route, primary, request, headers, body, error)
        if mirror is not None:
            mirror.primary_outcome.set_result(outcome)
            if route.read or route.state is not None:
                # Read the primary's state now, not when a worker gets to it: the caller's next
                # command on this entity may come soon. Off the caller's path all the same.
                mirror.primary_state = asyncio.create_task(read_state(self._readers[primary], command, outcome))
            if mirror.done is None:
                self._enqueue(mirror)
        if self._capture is not None:
            self._capture.write(command)
        return response

    async def _until_released(self, zone: str) -> RouteTable:
        """A flip of this zone is propagating: wait (bounded) for the route table that releases it."""
        if self._flip_held >= self.config.cutover.guard.hold_max:
            return self.table
        self._flip_held += 1
        self.metrics.flip_held.inc()
        deadline = time.monotonic() + self.config.cutover.hold_during_flip_s
        try:
            while _held(self.table, zone):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("zone %s held for %.1f s without a new route table: released to the current one",
                                zone, self.config.cutover.hold_during_flip_s)
                    break
                try:
                    await asyncio.wait_for(self._reloaded.wait(), timeout=min(remaining, 0.05))
                except asyncio.TimeoutError:
                    pass
            return self.table
        finally:
            self._flip_held -= 1

    @staticmethod
    def _new_mirror(command: Command, route: Route, primary: Target, request: web.Request, headers: CIMultiDict[str],
                    body: bytes, error: str | None) -> _Mirror:
        return _Mirror(command, route, primary, primary.other, request.method, request.path_qs, headers, body,
                       asyncio.get_running_loop().create_future(), error)

    async def _guarded(self, zone: str | None, request: web.Request, headers: CIMultiDict[str], body: bytes,
                       response: web.Response, outcome: Outcome) -> tuple[web.Response, Outcome, Target]:
        """The new primary's answer; when it failed, held until the zone resolves, then retried (same token)."""
        primary = Target.NEW
        while _failed(outcome) and primary is Target.NEW:
            self.guard.failed(zone, self.table.version)
            resolution = await self.guard.hold(zone, lambda: self.table.version)
            self.metrics.held.labels(resolution).inc()
            if resolution == "tripped":
                primary = Target.LEGACY
            elif resolution != "recovered":
                return response, outcome, primary  # held as long as allowed: the caller gets the failure
            response, outcome = await self._forward(primary, request.method, request.path_qs, headers, body)
        if not _failed(outcome):
            self.guard.succeeded(zone)
        return response, outcome, primary

    def _tripped(self, zone: str) -> None:
        """The guard switched a zone back to legacy here; write it to shadow.toml so every proxy follows."""
        self.metrics.trips.inc()
        log.error("guard: zone %s failing on the new engine for %.1f s: legacy is primary again",
                  zone or "(none)", self.config.cutover.guard.trip_after_s)
        if self.config.source is None or self.presence is None or self.presence.engine is None:
            return
        from cutover.controller import guard_rollback

        detail = {"instance": self.presence.instance, "trip_after_s": self.config.cutover.guard.trip_after_s,
                  "from_version": self.table.version}
        task = asyncio.get_running_loop().run_in_executor(None, guard_rollback, Path(self.config.source), zone,
                                                          self.presence.engine, detail)
        task.add_done_callback(lambda f: f.exception() and log.error("guard rollback of %s not written: %s",
                                                                     zone, f.exception()))

    def _window(self, window: Window) -> None:
        seconds = window.seconds or 0.0
        self.metrics.unavailable.observe(seconds)
        log.warning("zone %s unavailable for %.2f s (%d command(s) held%s)", window.zone or "(none)", seconds,
                    window.held, ", guard tripped" if window.tripped else "")
        if self.presence is not None and self.presence.engine is not None:
            from shadow import audit

            asyncio.get_running_loop().run_in_executor(None, lambda: audit.append(
                self.presence.engine, actor=self.presence.instance, action="guard.window",  # type: ignore[union-attr]
                subject=f"zone:{window.zone}", detail=window.to_dict()))

    async def _probe(self) -> None:
        """Probe the new engine's health while it is primary somewhere; zones failing long enough trip."""
        interval = self.config.cutover.guard.probe_interval_s
        target = self.config.targets["new"]
        timeout = aiohttp.ClientTimeout(total=max(interval * 4, 0.5))
        while True:
            await asyncio.sleep(interval)
            table = self.table
            zones = [z for z in self._guarded_zones(table) if not self.guard.tripped(z, table.version)]
            if not zones or self._session is None:
                continue
            try:
                async with self._session.get(target.url + target.health, timeout=timeout) as answer:
                    healthy = answer.status < 500
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                healthy = False
            for zone in zones:
                if healthy:
                    self.guard.probe_ok(zone)
                else:
                    self.guard.failed(zone, table.version, command=False)
            self.guard.check_all(table.version)

    def _guarded_zones(self, table: RouteTable) -> list[str]:
        routing = table.routing
        zones = set(routing.zones) | set(self.guard.zones)
        for own in routing.commands.values():
            zones |= set(own.zones)
        kinds = [None, *routing.commands]
        return sorted(z for z in zones if any(table.mode(z, k) in ("reverse", "new") for k in kinds))

    async def _body(self, request: web.Request) -> bytes | None:
        limit = self.config.proxy.max_body
        if request.content_length is not None and request.content_length > limit:
            return None
        body = await request.content.read(limit + 1)
        return None if len(body) > limit else body

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
        command = Command(kind=route.command, payload=payload, keys=keys,
                          zone=str(zone).lower() if zone is not None else None,
                          token=headers.get(TOKEN_HEADER) or new_token(), received_at=utcnow())
        return command, error

    async def _forward(self, target: Target, method: str, path_qs: str, headers: CIMultiDict[str],
                       body: bytes) -> tuple[web.Response, Outcome]:
        config = self.config.targets[target.value]
        url = config.url + path_qs
        assert self._session is not None
        started = time.perf_counter()
        try:
            async with self._session.request(method, url, headers=headers, data=body or None, allow_redirects=False,
                                             timeout=self._timeouts[target], skip_auto_headers=_NO_AUTO) as upstream:
                raw = await upstream.read()
                seconds = time.perf_counter() - started
                response = web.Response(status=upstream.status, reason=upstream.reason, body=raw,
                                        headers=forwardable(upstream.headers))
                status = Status.OK if upstream.status < 400 else Status.ERROR
                outcome = Outcome(target=target, status=status, http_status=upstream.status,
                                  response=decode_body(raw), latency_ms=seconds * 1000)
        except asyncio.TimeoutError:
            seconds = time.perf_counter() - started
            self.metrics.primary_errors.inc()
            message = f"primary {target.value} gave no answer within {config.timeout:g}s"
            response = web.json_response({"error": message}, status=504)
            outcome = Outcome(target=target, status=Status.TIMEOUT, error=message, latency_ms=seconds * 1000)
        except (aiohttp.ClientError, OSError) as exc:
            seconds = time.perf_counter() - started
            self.metrics.primary_errors.inc()
            message = f"primary {target.value} at {mask_url(config.url)} cannot be reached: {type(exc).__name__}"
            response = web.json_response({"error": message}, status=502)
            outcome = Outcome(target=target, status=Status.ERROR, error=message, latency_ms=seconds * 1000)
        self.metrics.primary_latency.observe(seconds)
        return response, outcome

    def _enqueue(self, mirror: _Mirror) -> None:
        assert self._queue is not None
        entity = next(iter(mirror.command.keys.items()), None)
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
            self._last[entity] = mirror.done
            mirror.done.add_done_callback(lambda f, e=entity: self._last.get(e) is f and self._last.pop(e))

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
        assert self._session is not None
        self.metrics.mirrored.inc()
        started = time.perf_counter()
        try:
            async with self._session.request(mirror.method, config.url + mirror.path_qs, headers=headers,
                                             data=mirror.body or None, allow_redirects=False,
                                             timeout=self._timeouts[mirror.shadow], skip_auto_headers=_NO_AUTO) as upstream:
                raw = await upstream.read()
                status = Status.OK if upstream.status < 400 else Status.ERROR
                outcome = Outcome(target=mirror.shadow, status=status, http_status=upstream.status,
                                  response=decode_body(raw), latency_ms=(time.perf_counter() - started) * 1000)
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
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _authorised(self, request: web.Request) -> bool:
        if self._admin_token is None:
            return False  # no token configured: admin endpoints stay closed
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip().encode()
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
