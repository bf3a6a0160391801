"""Paths into an outcome document, and globs over them.

A concrete path is what the comparator writes: `state.stops[2].eta`. A glob
may use `[*]` for any list index, `*` for any one key and `**` for any number
of segments: `state.stops[*].eta`, `*.created_at`, `**.driver_name`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Union

__all__ = ["Segment", "KEY", "INDEX", "ANY_KEY", "ANY_INDEX", "DEEP", "parse_path", "PathGlob", "field_of"]

KEY, INDEX, ANY_KEY, ANY_INDEX, DEEP = "key", "index", "any-key", "any-index", "deep"
Segment = tuple[str, Union[str, int, None]]

_PART = re.compile(r"""
    (?P<bracket>\[(?:(?P<index>\d+)|(?P<star>\*)|"(?P<quoted>(?:[^"\\]|\\.)*)")\])
  | (?P<dot>\.)
  | (?P<name>[^.\[\]]+)
""", re.VERBOSE)


def parse_path(text: str) -> list[Segment]:
    """Segments of a path or glob; ValueError naming the position when it cannot be read."""
    if not text or text.strip() != text:
        raise ValueError(f"path {text!r} is empty or has surrounding spaces")
    segments: list[Segment] = []
    position = 0
    expect_name = True
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise ValueError(f"path {text!r}: cannot read {text[position:]!r} (position {position})")
        if match["dot"]:
            if expect_name:
                raise ValueError(f"path {text!r}: a '.' with no name before it (position {position})")
            expect_name = True
        elif match["bracket"]:
            if match["index"] is not None:
                segments.append((INDEX, int(match["index"])))
            elif match["star"]:
                segments.append((ANY_INDEX, None))
            else:
                segments.append((KEY, json.loads(f'"{match["quoted"]}"')))  # the comparator writes keys JSON-escaped
            expect_name = False
        else:
            name = match["name"]
            if not expect_name:
                raise ValueError(f"path {text!r}: expected '.' or '[' before {name!r} (position {position})")
            segments.append((DEEP, None) if name == "**" else (ANY_KEY, None) if name == "*" else (KEY, name))
            expect_name = False
        position = match.end()
    if expect_name:
        raise ValueError(f"path {text!r} ends with '.'")
    return segments


def _matches(glob: list[Segment], path: list[Segment], i: int = 0, j: int = 0) -> bool:
    while i < len(glob):
        kind, value = glob[i]
        if kind == DEEP:
            return any(_matches(glob, path, i + 1, k) for k in range(j, len(path) + 1))
        if j >= len(path):
            return False
        pkind, pvalue = path[j]
        if kind == KEY and not (pkind == KEY and pvalue == value):
            return False
        if kind == ANY_KEY and pkind != KEY:
            return False
        if kind == INDEX and not (pkind in (INDEX, ANY_INDEX) and (pvalue == value or pkind == ANY_INDEX)):
            return False
        if kind == ANY_INDEX and pkind not in (INDEX, ANY_INDEX):
            return False
        i, j = i + 1, j + 1
    return j == len(path)


@dataclass(frozen=True)
class PathGlob:
    """A compiled glob: `matches` a concrete or wild-carded path, or a path under it."""

    text: str
    segments: tuple[Segment, ...]

    @classmethod
    def compile(cls, text: str) -> "PathGlob":
        """Parse a glob once; ValueError says what is wrong with it."""
        return cls(text, tuple(parse_path(text)))

    def matches(self, path: str, *, prefix: bool = False) -> bool:
        """Whether a comparator path is this glob (or lies under it, with prefix=True)."""
        segments = parse_path(path)
        if prefix:
            return any(_matches(list(self.segments), segments[:n]) for n in range(len(segments), 0, -1))
        return _matches(list(self.segments), segments)


def field_of(path: str) -> str:
    """The field a path ends at: its last key (`state.assignments[*].driver_name` → driver_name).

    The outcome's own fields keep an `@` (`@status`, `@http_status`) so that a
    command that failed on one side is never grouped with an entity's status field.
    """
    segments = parse_path(path)
    keys = [value for kind, value in segments if kind == KEY]
    if not keys:
        return path
    if len(segments) == 1 and keys[0] in ("status", "http_status", "response", "state"):
        return f"@{keys[0]}"
    return str(keys[-1])
