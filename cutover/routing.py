"""The route table: per zone, which target is primary (DESIGN.md, "Cutover semantics")."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from shadow.config import Config, Mode, Route, RoutingConfig
from shadow.model import Command, Target

__all__ = ["mode_for", "primary_target", "mirrors", "RouteTable", "CompiledRoute"]


def mode_for(routing: RoutingConfig, zone: str | None) -> Mode:
    """The mode a zone runs in: its own entry, else the table's default (zones match case-insensitively)."""
    if zone:
        wanted = zone.casefold()
        for name, mode in routing.zones.items():
            if name.casefold() == wanted:
                return mode
    return routing.default


def primary_target(routing: RoutingConfig, command: Command) -> Target:
    """The target whose answer goes back to the caller for this command."""
    return Target.NEW if mode_for(routing, command.zone) in ("reverse", "new") else Target.LEGACY


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

    The version is a number that only grows within a process plus a hash of the
    content, so two proxies running the same table report the same hash.
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
    def from_config(cls, config: Config, number: int = 1) -> "RouteTable":
        """Compile a config's routes and routing."""
        compiled = []
        for route in config.routes:
            regex = "".join(f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                            for part in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", route.path))
            compiled.append(CompiledRoute(route, route.method, re.compile(f"^{regex}$")))
        content = json.dumps({"routes": [r.model_dump(mode="json") for r in config.routes],
                              "routing": config.routing.model_dump(mode="json")}, sort_keys=True)
        return cls(tuple(compiled), config.routing, number, hashlib.sha256(content.encode()).hexdigest()[:8])

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route a request is, with its path parameters (None: not a command)."""
        for compiled in self.routes:
            if compiled.method == method:
                found = compiled.pattern.match(path)
                if found is not None:
                    return compiled.route, found.groupdict()
        return None

    def mode(self, zone: str | None) -> Mode:
        """The mode a zone runs in."""
        return mode_for(self.routing, zone)
