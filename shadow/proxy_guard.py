"""The guard's side of the proxy: zones held while a flip propagates, failed commands held and retried,
the trip written back to shadow.toml, windows recorded, the new engine's health probed.

`Proxy` inherits these handlers; the guard's arithmetic itself is `shadow.guard.Guard`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from adapters.http1 import origin_form
from cutover.routing import RouteTable
from shadow.guard import Window
from shadow.model import Outcome, Status, Target

if TYPE_CHECKING:
    from shadow.config import Config
    from shadow.guard import Guard
    from shadow.metrics import ProxyMetrics
    from shadow.presence import Presence

__all__ = ["GuardedZones", "held", "failed_outcome"]

log = logging.getLogger("shadow.proxy")


def held(table: RouteTable, zone: str) -> bool:
    """Whether a flip of this zone is propagating (the table lists it under `[routing] hold`)."""
    wanted = zone.casefold()
    return any(z.casefold() == wanted for z in table.routing.hold)


def failed_outcome(outcome: Outcome) -> bool:
    """The target did not do its job: no answer, unreachable, or a 5xx (a 4xx is the target's own decision)."""
    return outcome.status is Status.TIMEOUT or (outcome.status is Status.ERROR and
                                                (outcome.http_status is None or outcome.http_status >= 500))


class GuardedZones:
    """Handlers of the proxy that serve the guard and the two-phase flip."""

    config: "Config"
    table: RouteTable
    guard: "Guard"
    metrics: "ProxyMetrics"
    presence: "Presence | None"
    _session: aiohttp.ClientSession | None
    _reloaded: asyncio.Event
    _flip_held: int

    _forward: Callable[[Target, str, str, CIMultiDict[str], bytes], Awaitable[tuple[web.Response, Outcome]]]

    async def _until_released(self, zone: str) -> RouteTable:
        """A flip of this zone is propagating: wait (bounded) for the route table that releases it."""
        if self._flip_held >= self.config.cutover.guard.hold_max:
            return self.table
        self._flip_held += 1
        self.metrics.flip_held.inc()
        deadline = time.monotonic() + self.config.cutover.hold_during_flip_s
        try:
            while held(self.table, zone):
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

    async def _guarded(self, zone: str | None, request: web.Request, headers: CIMultiDict[str], body: bytes,
                       response: web.Response, outcome: Outcome) -> tuple[web.Response, Outcome, Target]:
        """The new primary's answer; when it failed, held until the zone resolves, then retried (same token)."""
        primary = Target.NEW
        while failed_outcome(outcome) and primary is Target.NEW:
            self.guard.failed(zone, self.table.version)
            resolution = await self.guard.hold(zone, lambda: self.table.version)
            self.metrics.held.labels(resolution).inc()
            if resolution == "tripped":
                primary = Target.LEGACY
            elif resolution != "recovered":
                return response, outcome, primary  # held as long as allowed: the caller gets the failure
            response, outcome = await self._forward(primary, request.method, origin_form(request.raw_path), headers,
                                                        body)
        if not failed_outcome(outcome):
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
