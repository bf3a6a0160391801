"""The catalogue at a glance: the headline of a report (match rates, quirks per verdict), read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reports.query import MatchRate, Scope, build_report
from rules.catalogue import Catalogue

__all__ = ["MatchRate", "Summary", "summarise"]


@dataclass(frozen=True)
class Summary:
    """Overall and per-slice match rates, and quirk counts per verdict."""

    overall: MatchRate
    accepted: MatchRate  # pairs whose every difference belongs to a retired or noise quirk count as matched
    by_command: list[MatchRate] = field(default_factory=list)
    by_zone: list[MatchRate] = field(default_factory=list)
    quirks: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view, for --json output."""
        return {"overall": self.overall.to_dict(), "accepted": self.accepted.to_dict(),
                "by_command": [m.to_dict() for m in self.by_command], "by_zone": [m.to_dict() for m in self.by_zone],
                "quirks": self.quirks, "verdicts": self.verdicts}


def summarise(catalogue: Catalogue, scope: Scope | None = None) -> Summary:
    """The headline figures of the report for a scope (the whole catalogue by default)."""
    report = build_report(catalogue, scope, examples=0)
    return Summary(overall=report.overall, accepted=report.accepted, by_command=report.by_command,
                   by_zone=report.by_zone, quirks=len(report.quirks), verdicts=report.verdicts)
