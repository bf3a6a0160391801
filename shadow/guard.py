"""The guard: bounds unavailability while the new engine is primary in a zone, and rolls the zone back by itself.

It watches every command's result on the new primary and a health probe of the
new engine. A command that fails there is not failed to the caller: it is held
(bounded in time and count) until the zone resolves — the new engine answers
again (the command is retried there, same dispatch token), or the zone has been
failing for `trip_after_s` and the guard trips: the proxy switches the zone to
`shadow` (legacy primary) at once and the held commands go to legacy. Every
unavailability window (first failed or held command to first success) is
measured.

Budget arithmetic: a caller waits at most trip_after_s (detection) plus one
retry on legacy; the config refuses a trip_after_s that leaves less than the
margin below `availability_budget_s` (the flip to every other proxy takes up to
a second, `[proxy] reload_seconds`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Guard", "ZoneGuard", "Window"]


@dataclass
class Window:
    """One stretch of unavailability in a zone: from the first failed or held command to the first success."""

    zone: str
    started: float          # monotonic
    started_wall: float     # time.time(), for the record
    ended: float | None = None
    held: int = 0
    tripped: bool = False

    @property
    def seconds(self) -> float | None:
        """How long the zone was unavailable (None while it still is)."""
        return None if self.ended is None else self.ended - self.started

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"zone": self.zone, "started": self.started_wall, "seconds": self.seconds, "held": self.held,
                "tripped": self.tripped}


@dataclass
class ZoneGuard:
    """One zone's state: failing since when, tripped under which route-table version, commands held."""

    failing_since: float | None = None
    tripped_version: str | None = None
    held: int = 0
    window: Window | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class Guard:
    """Per-zone watch over the new primary; trips to legacy before the availability budget runs out."""

    def __init__(self, *, trip_after_s: float, hold_max_s: float, hold_max: int,
                 on_trip: Callable[[str], None], on_window: Callable[[Window], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.trip_after_s, self.hold_max_s, self.hold_max = trip_after_s, hold_max_s, hold_max
        self._on_trip, self._on_window, self._clock = on_trip, on_window, clock
        self.zones: dict[str, ZoneGuard] = {}
        self.windows: list[Window] = []

    def _zone(self, zone: str) -> ZoneGuard:
        found = self.zones.get(zone)
        if found is None:
            found = self.zones[zone] = ZoneGuard()
        return found

    def tripped(self, zone: str | None, version: str) -> bool:
        """Whether the guard switched this zone to legacy under this route-table version (a new one clears it)."""
        found = self.zones.get(zone or "")
        return found is not None and found.tripped_version == version

    def failed(self, zone: str | None, version: str, *, command: bool = True) -> None:
        """The new primary failed a command in this zone (command=False: the health probe failed)."""
        z = self._zone(zone or "")
        now = self._clock()
        if z.failing_since is None:
            z.failing_since = now
        if command and z.window is None:  # a probe alone is not a caller kept waiting
            z.window = Window(zone or "", now, time.time())
        self.check(zone or "", version)

    def probe_ok(self, zone: str | None) -> None:
        """The new engine answers its health probe: held commands may try it again."""
        z = self.zones.get(zone or "")
        if z is not None and z.failing_since is not None and not z.tripped_version:
            z.failing_since = None
            self._wake(z)

    def succeeded(self, zone: str | None) -> None:
        """A command in this zone succeeded (on whichever primary): the zone is available again."""
        z = self.zones.get(zone or "")
        if z is None or (z.failing_since is None and z.window is None):
            return
        z.failing_since = None
        if z.window is not None:
            z.window.ended = self._clock()
            self.windows.append(z.window)
            self._on_window(z.window)
            z.window = None
        self._wake(z)

    def check(self, zone: str, version: str) -> bool:
        """Trip the zone when it has been failing for trip_after_s; True when it is (now) tripped."""
        z = self._zone(zone)
        if z.tripped_version == version:
            return True
        if z.failing_since is not None and self._clock() - z.failing_since >= self.trip_after_s:
            z.tripped_version = version
            if z.window is not None:
                z.window.tripped = True
            self._on_trip(zone)
            self._wake(z)
            return True
        return False

    def check_all(self, version: str) -> None:
        """Called on every probe tick: zones failing long enough trip even without traffic."""
        for zone in list(self.zones):
            self.check(zone, version)

    @staticmethod
    def _wake(z: ZoneGuard) -> None:
        z.changed.set()
        z.changed = asyncio.Event()

    async def hold(self, zone: str | None, version: Callable[[], str]) -> str:
        """Hold a failed command until the zone resolves: 'tripped', 'recovered', or 'timeout' / 'full'."""
        z = self._zone(zone or "")
        if z.held >= self.hold_max:
            return "full"
        z.held += 1
        if z.window is not None:
            z.window.held += 1
        deadline = self._clock() + self.hold_max_s
        try:
            while True:
                if self.check(zone or "", version()):
                    return "tripped"
                if z.failing_since is None:
                    return "recovered"
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return "timeout"
                try:
                    await asyncio.wait_for(z.changed.wait(), timeout=min(remaining, 0.05))
                except asyncio.TimeoutError:
                    pass
        finally:
            z.held -= 1

    def snapshot(self) -> dict[str, Any]:
        """The guard's state per zone, for heartbeats and `cutover status`."""
        now = self._clock()
        out = {}
        for zone, z in self.zones.items():
            state = "tripped" if z.tripped_version else "failing" if z.failing_since is not None else "watching"
            out[zone or "(none)"] = {"state": state, "held": z.held,
                                     "failing_s": None if z.failing_since is None else round(now - z.failing_since, 2),
                                     "tripped_version": z.tripped_version}
        return out
