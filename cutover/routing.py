"""The route table: per zone, which target is primary (DESIGN.md, "Cutover semantics")."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from shadow.config import Config, Mode, Route, RoutingConfig
from shadow.model import Command, Target

__all__ = ["mode_for", "primary_of", "primary_target", "mirrors", "RouteTable", "CompiledRoute"]


def _zone_mode(zones: dict[str, Mode], zone: str | None) -> Mode | None:
    if zone:
        wanted = zone.casefold()
        for name, mode in zones.items():
            if name.casefold() == wanted:
                return mode
    return None


def mode_for(routing: RoutingConfig, zone: str | None, command: str | None = None) -> Mode:
    """The mode of a zone (and command kind): the command kind's zone entry, else the zone's entry, else the
    command kind's default, else the table's default. Zones match case-insensitively."""
    own = routing.commands.get(command) if command else None
    if own is not None:
        found = _zone_mode(own.zones, zone)
        if found is not None:
            return found
    found = _zone_mode(routing.zones, zone)
    if found is not None:
        return found
    if own is not None and own.default is not None:
        return own.default
    return routing.default


def primary_of(mode: Mode) -> Target:
    """The target that answers the caller in a mode."""
    return Target.NEW if mode in ("reverse", "new") else Target.LEGACY


def primary_target(routing: RoutingConfig, command: Command) -> Target:
    """The target whose answer goes back to the caller for this command."""
    return primary_of(mode_for(routing, command.zone, command.kind))


def mirrors(mode: Mode) -> bool:
    """Whether the mode sends a shadow copy to the other target."""
    return mode in ("shadow", "reverse")


@dataclass(frozen=True)
class CompiledRoute:
    """A route with its path template compiled to a regular expression."""

    route: Route
    method: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class RouteTable:
    """Which requests are commands, and the mode per zone: what a proxy runs, under a version.

    The version is `[routing] version` (raised by `shadow cutover execute` on every
    flip) plus a hash of the content, so two proxies running the same table report
    the same version, and a hand edit that forgot the number still shows a new hash.
    """

    routes: tuple[CompiledRoute, ...]
    routing: RoutingConfig
    number: int
    digest: str

    @property
    def version(self) -> str:
        """`number-hash`, e.g. `3-1c8e6d1b`."""
        return f"{self.number}-{self.digest}"

    @classmethod
    def from_config(cls, config: Config, number: int | None = None) -> "RouteTable":
        """Compile a config's routes and routing."""
        compiled = []
        for route in config.routes:
            regex = "".join(f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                            for part in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", route.path))
            compiled.append(CompiledRoute(route, route.method, re.compile(f"^{regex}$")))
        content = json.dumps({"routes": [r.model_dump(mode="json") for r in config.routes],
                              "routing": config.routing.model_dump(mode="json")}, sort_keys=True)
        digest = hashlib.sha256(content.encode()).hexdigest()[:8]
        return cls(tuple(compiled), config.routing, config.routing.version if number is None else number, digest)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route a request is, with its path parameters (None: not a command)."""
        for compiled in self.routes:
            if compiled.method == method:
                found = compiled.pattern.match(path)
                if found is not None:
                    return compiled.route, found.groupdict()
        return None

    def mode(self, zone: str | None, command: str | None = None) -> Mode:
        """The mode a zone (and command kind) runs in."""
        return mode_for(self.routing, zone, command)
