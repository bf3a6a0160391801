"""Match rates from the catalogue: overall, per command kind, per zone (read-only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from rules.catalogue import Catalogue
from rules.schema import differences, pair_results, quirks

__all__ = ["MatchRate", "Summary", "summarise"]


@dataclass(frozen=True)
class MatchRate:
    """Pairs compared and how many matched, for one slice."""

    name: str
    pairs: int
    matched: int

    @property
    def rate(self) -> float | None:
        """matched / pairs, or None when there is no pair (never a made-up 100 %)."""
        return self.matched / self.pairs if self.pairs else None


@dataclass(frozen=True)
class Summary:
    """The catalogue at a glance."""

    overall: MatchRate
    accepted: MatchRate  # pairs whose every difference belongs to a retired or noise quirk count as matched
    by_command: list[MatchRate] = field(default_factory=list)
    by_zone: list[MatchRate] = field(default_factory=list)
    quirks: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view, for --json output."""
        def rate(m: MatchRate) -> dict[str, Any]:
            return {"name": m.name, "pairs": m.pairs, "matched": m.matched, "match_rate": m.rate}

        return {"overall": rate(self.overall), "accepted": rate(self.accepted), "by_command": [rate(m) for m in self.by_command],
                "by_zone": [rate(m) for m in self.by_zone], "quirks": self.quirks, "verdicts": self.verdicts}


def _rates(conn: sa.Connection, column: sa.ColumnElement[Any] | None) -> list[MatchRate]:
    matched = sa.func.sum(sa.case((pair_results.c.matched, 1), else_=0))
    if column is None:
        row = conn.execute(sa.select(sa.func.count(), matched).select_from(pair_results)).one()
        return [MatchRate("all", row[0] or 0, row[1] or 0)]
    query = sa.select(column, sa.func.count(), matched).group_by(column).order_by(column)
    return [MatchRate(str(name), n or 0, m or 0) for name, n, m in conn.execute(query)]


def summarise(catalogue: Catalogue) -> Summary:
    """Overall and per-slice match rates, and quirk counts per verdict."""
    with catalogue.engine.connect() as conn:
        overall = _rates(conn, None)[0]
        unexplained = sa.exists(
            sa.select(1).select_from(differences.join(quirks, quirks.c.id == differences.c.quirk))
            .where(differences.c.token == pair_results.c.token, quirks.c.verdict.in_(("open", "reproduce"))))
        accepted = conn.execute(sa.select(sa.func.count()).select_from(pair_results).where(~unexplained)).scalar_one()
        verdicts = dict(conn.execute(
            sa.select(quirks.c.verdict, sa.func.count()).where(quirks.c.differences > 0).group_by(quirks.c.verdict)
        ).all())
        return Summary(
            overall=overall,
            accepted=MatchRate("accepted", overall.pairs, accepted),
            by_command=_rates(conn, pair_results.c.command),
            by_zone=_rates(conn, pair_results.c.zone),
            quirks=sum(verdicts.values()),
            verdicts=verdicts,
        )
