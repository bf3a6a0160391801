"""The route table: per zone, which target is primary (DESIGN.md, "Cutover semantics")."""

from __future__ import annotations

from shadow.config import Mode, RoutingConfig
from shadow.model import Command, Target

__all__ = ["mode_for", "primary_target", "mirrors"]


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
