"""The reference pair's documented quirks and noise, read from its README.md.

The README is the one list: people read it, and tests hold both the services
and the catalogue against it, so the three cannot drift apart unnoticed.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["PlantedQuirk", "planted_quirks", "noise_paths", "TRANSITION_CLASSES"]

# The README's transition words → the comparator's transition classes (rules.transitions).
TRANSITION_CLASSES: dict[str, set[str]] = {
    "trailing/leading whitespace": {"trailing-whitespace", "leading-whitespace", "whitespace"},
    "case only": {"case-only"},
    "sub-second precision": {"sub-second-precision"},
    "rounding": {"rounding"},
    "null vs empty": {"null-vs-empty"},
    "value": {"value"},
    "time-zone shift": {"timezone-shift"},
    "list order only": {"list-order"},
    "list length": {"list-length"},
    "boolean representation": {"boolean-representation"},
    "enum mapping": {"enum-mapping"},
    "type change": {"type-change"},
    "float epsilon": {"float-epsilon"},
}


@dataclass(frozen=True)
class PlantedQuirk:
    """One row of the README's `## Planted quirks` table."""

    id: str
    quirk: str
    transition: str
    paths: tuple[str, ...]
    commands: tuple[str, ...]
    where: str


def _readme() -> str:
    return resources.files("shadow.demo").joinpath("README.md").read_text(encoding="utf-8")


def _table(heading: str) -> list[dict[str, str]]:
    section = _readme().split(f"\n{heading}\n", 1)[1]
    lines = list(itertools.dropwhile(lambda s: not s.startswith("|"), section.splitlines()))
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in itertools.takewhile(lambda s: s.startswith("|"), lines[2:]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def _ticked(cell: str) -> tuple[str, ...]:
    return tuple(re.findall(r"`([^`]+)`", cell))


def planted_quirks() -> list[PlantedQuirk]:
    """Every planted quirk, in README order."""
    return [
        PlantedQuirk(
            id=row["id"].strip("`"), quirk=row["quirk"], transition=row["transition"],
            paths=_ticked(row["paths"]), commands=tuple(c.strip() for c in row["commands"].split(",")),
            where=row["where"],
        )
        for row in _table("## Planted quirks")
    ]


def noise_paths() -> set[str]:
    """The paths that always differ by nature (ids, wall-clock stamps)."""
    return {path for row in _table("## Noise") for path in _ticked(row["path"])}
