"""A flip as a change to `shadow.toml`: the few `[routing]` lines that change, comments and layout kept (tomlkit)."""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import tomlkit
from tomlkit.items import Table

from cutover.routing import mode_for
from shadow.config import Mode, parse_config
from shadow.errors import ConfigError

__all__ = ["Flip", "flip_text", "hold_text", "text_sha", "write_config", "config_lock", "zone_back_to_legacy", "MODES"]

MODES: tuple[Mode, ...] = ("legacy", "shadow", "reverse", "new")


def text_sha(text: str) -> str:
    """The identity of a config file's content."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Flip:
    """One zone (and optionally one command kind) moved from one mode to another."""

    zone: str
    command: str | None
    from_mode: Mode
    to_mode: Mode
    old_text: str
    new_text: str
    version: int  # the [routing] version the new text carries

    @property
    def diff(self) -> str:
        """The change as a unified diff of shadow.toml."""
        return "".join(difflib.unified_diff(self.old_text.splitlines(keepends=True),
                                            self.new_text.splitlines(keepends=True), "shadow.toml", "shadow.toml"))


def _bump(routing: Table) -> int:
    """Raise `[routing] version` by one (adding it at the top of the table when missing)."""
    version = int(routing.get("version", 0)) + 1
    if "version" in routing:
        routing["version"] = version
    else:
        # Keep the version at the top of [routing], where a reviewer reads it first.
        items = list(routing.items())
        for key in list(routing.keys()):
            del routing[key]
        routing["version"] = version
        for key, value in items:
            routing[key] = value
    return version


def hold_text(text: str, zone: str, *, hold: bool, source: str = "shadow.toml") -> str:
    """The config text with the zone added to (or removed from) `[routing] hold`, version raised."""
    doc = tomlkit.parse(text)
    routing = _table(doc, "routing", inline=False)
    held = [str(z) for z in routing.get("hold", [])]
    others = [z for z in held if z.casefold() != zone.casefold()]
    if (len(others) < len(held)) == hold:
        return text  # already held (or already not)
    wanted = [*others, zone] if hold else others
    if wanted:
        routing["hold"] = wanted
    else:
        del routing["hold"]
    _bump(routing)
    new_text = tomlkit.dumps(doc)
    parse_config(new_text, source=source)
    return new_text


def _table(parent: Table | tomlkit.TOMLDocument, key: str, *, inline: bool) -> Table:
    if key not in parent:
        parent[key] = tomlkit.inline_table() if inline else tomlkit.table()
    return parent[key]  # type: ignore[return-value]


def flip_text(text: str, zone: str, to: Mode, *, command: str | None = None, source: str = "shadow.toml",
              release: bool = False) -> Flip:
    """The config text with the zone's mode set (and `[routing] version` raised by one).

    With `release`, the zone also leaves `[routing] hold` in the same version: the second phase of a flip.
    """
    if to not in MODES:
        raise ConfigError(f"mode {to!r} is not one of {', '.join(MODES)}")
    config = parse_config(text, source=source)
    from_mode = mode_for(config.routing, zone, command)
    doc = tomlkit.parse(text)
    routing = _table(doc, "routing", inline=False)
    if command is None:
        zones = _table(routing, "zones", inline=True)
    else:
        commands = _table(routing, "commands", inline=False)
        fresh = command not in commands
        own = _table(commands, command, inline=False)
        zones = _table(own, "zones", inline=True)
        if fresh:
            own.add(tomlkit.nl())  # a blank line before whatever table follows
    existing = next((name for name in zones if str(name).casefold() == zone.casefold()), None)
    zones[existing or zone] = to
    if release and "hold" in routing:
        kept = [str(z) for z in routing["hold"] if str(z).casefold() != zone.casefold()]
        if kept:
            routing["hold"] = kept
        else:
            del routing["hold"]
    version = _bump(routing)
    new_text = tomlkit.dumps(doc)
    parse_config(new_text, source=source)  # the flipped file must still validate
    return Flip(zone, command, from_mode, to, text, new_text, version)


def write_config(path: Path, text: str) -> None:
    """Replace the config file at once: a proxy never reads a half-written file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@contextlib.contextmanager
def config_lock(path: Path) -> Iterator[None]:
    """One writer of the config at a time (controller, guards of several proxies): read, change, write under it."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def zone_back_to_legacy(text: str, zone: str, *, source: str = "shadow.toml") -> list[Flip]:
    """Every flip that makes legacy primary again in a zone (the zone's entry and command kinds' own entries)."""
    config = parse_config(text, source=source)
    flips: list[Flip] = []
    kinds = [None, *sorted(config.routing.commands)]
    for kind in kinds:
        if mode_for(config.routing, zone, kind) in ("reverse", "new"):
            flip = flip_text(text, zone, "shadow", command=kind, source=source, release=True)
            flips.append(flip)
            text = flip.new_text
            config = parse_config(text, source=source)
    return flips
