"""HTTP targets and state readers: how replay (and later the proxy) reach a system.

A command becomes the request its route declares (`match = "POST /loads/{load_id}/assign"`):
path parameters come from the command's natural keys, then from its payload;
the payload is the JSON body; the dispatch token travels in `X-Dispatch-Token`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Mapping
from urllib.parse import quote

import aiohttp
import orjson

from shadow.config import Route, TargetConfig, path_params
from shadow.errors import TargetError
from shadow.model import Command, Outcome, Status, Target
from shadow.secrets import mask_url

TOKEN_HEADER = "X-Dispatch-Token"


def fill_path(template: str, command: Command, params: list[str]) -> str:
    """The template with each {param} taken from the command's keys, then its payload."""
    path = template
    payload = command.payload if isinstance(command.payload, Mapping) else {}
    for name in params:
        if name in command.keys:
            value = command.keys[name]
        elif name in payload:
            value = payload[name]
        else:
            raise TargetError(
                f"command {command.kind} ({command.token}) has no value for path parameter {{{name}}}",
                hint=f"add {name!r} to the command's keys or payload, or fix the route's path",
            )
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    return path


def decode_body(body: bytes) -> Any:
    """A response body as JSON when it is JSON, else as text (never raises)."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace")


class HttpTarget:
    """A CommandTarget reached over HTTP with aiohttp."""

    def __init__(self, target: Target, config: TargetConfig, routes: list[Route], *,
                 session: aiohttp.ClientSession) -> None:
        self.target = target
        self.config = config
        self._routes = {route.command: route for route in routes}
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=config.timeout)

    async def send(self, command: Command) -> Outcome:
        """Send a command as its route's request; errors and timeouts become the Outcome."""
        route = self._routes.get(command.kind)
        if route is None:
            return Outcome(target=self.target, status=Status.ERROR,
                           error=f"no route declares command kind {command.kind!r}")
        try:
            path = fill_path(route.path, command, route.params)
        except TargetError as exc:
            return Outcome(target=self.target, status=Status.ERROR, error=exc.message)
        headers = {**self.config.headers, TOKEN_HEADER: command.token or "", "Content-Type": "application/json"}
        body = orjson.dumps(command.payload) if command.payload is not None else b""
        status, http_status, response, error, latency = await self._request(route.method, path, headers, body)
        return Outcome(target=self.target, status=status, http_status=http_status,
                       response=response, latency_ms=latency, error=error)

    async def _request(self, method: str, path: str, headers: Mapping[str, str],
                       body: bytes) -> tuple[Status, int | None, Any, str | None, float]:
        url = self.config.url + path
        started = time.perf_counter()
        try:
            async with self._session.request(method, url, data=body or None, headers=headers,
                                             timeout=self._timeout) as resp:
                raw = await resp.read()
                latency = (time.perf_counter() - started) * 1000
                status = Status.OK if 200 <= resp.status < 300 else Status.ERROR
                return status, resp.status, decode_body(raw), None, latency
        except asyncio.TimeoutError:
            latency = (time.perf_counter() - started) * 1000
            return Status.TIMEOUT, None, None, f"no answer within {self.config.timeout:g}s from {mask_url(url)}", latency
        except (aiohttp.ClientError, OSError) as exc:
            latency = (time.perf_counter() - started) * 1000
            return Status.ERROR, None, None, f"{type(exc).__name__}: {exc} ({mask_url(url)})", latency

    async def close(self) -> None:
        """The session is owned by whoever created it."""


class HttpStateReader:
    """A StateReader that GETs the route's `read` endpoint on one target."""

    def __init__(self, target: HttpTarget, routes: list[Route]) -> None:
        self._target = target
        self._reads = {route.command: route for route in routes if route.read}

    async def read(self, command: Command) -> Any:
        """The touched entity as the target's read endpoint shows it (None if no read is declared)."""
        route = self._reads.get(command.kind)
        if route is None:
            return None
        template = route.read_path or ""
        path = fill_path(template, command, path_params(template))
        headers = {**self._target.config.headers, TOKEN_HEADER: command.token or ""}
        status, http_status, body, error, _ = await self._target._request("GET", path, headers, b"")
        if status is not Status.OK:
            raise TargetError(f"state read-back GET {path} failed: {error or f'HTTP {http_status}'}")
        return body

    async def close(self) -> None:
        """Nothing to release."""


def client_session(concurrency: int) -> aiohttp.ClientSession:
    """One pooled client session for all targets, sized for the run's concurrency."""
    connector = aiohttp.TCPConnector(limit=max(concurrency * 2, 8), limit_per_host=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, json_serialize=lambda o: orjson.dumps(o).decode())
