"""A canary step's SLA: thresholds, the figures of a soak read from the stored pairs, and the verdict.

The hourly roll-ups that reports and gates read are too coarse for a soak of a
few minutes, so the figures come from `pair_results` for the exact window
(to the second), for one zone, and only for pairs recorded in the step's mode
(a pair whose primary was the step's primary): stragglers from the mode before
the flip do not count. Missing data never passes: a soak with fewer pairs than
`min_pairs` is a breach (once late pairs had `settle_seconds` to be stored).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from reports.query import RECONCILE_PREFIX
from rules.schema import differences, pair_results, quirks

__all__ = ["SlaThresholds", "SoakFigures", "soak_figures", "judge", "MEASURED_MODES"]

# Modes in which the proxies record pairs (both targets answer). In `new` nothing is mirrored, so a soak
# there has no pair to measure: it is watched (the zone must stay in `new`), not measured.
MEASURED_MODES = ("shadow", "reverse")
_BLOCKING = ("open", "reproduce")
_FAILED = ("error", "timeout")


class SlaThresholds(BaseModel):
    """What the new engine must hold during every soak of a canary plan (`[sla]` of the plan file)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max_error_rate: float = Field(1.0, ge=0, le=100, description="maximum share (percent) of the zone's commands "
                                                                 "the new engine answered with an error or timeout")
    max_p95_ms: float | None = Field(None, gt=0, description="maximum p95 latency of the new engine (ms)")
    latency_factor: float | None = Field(None, gt=0, description="the new engine's p95 may be at most this times "
                                                                 "legacy's p95 in the same soak")
    min_match_rate: float = Field(99.0, ge=0, le=100, description="minimum accepted match rate (percent): pairs "
                                                                  "without a difference of an open or reproduce quirk")
    min_pairs: int = Field(100, ge=1, description="pairs a soak needs before its rates are judged; fewer at the end "
                                                  "of the soak is a breach (missing data never passes)")
    check_seconds: float = Field(5.0, gt=0, description="how often the SLA is checked during a soak (seconds)")
    settle_seconds: float = Field(10.0, ge=0, description="at the end of a soak, how long pairs recorded during it "
                                                          "may take to reach the catalogue before too few is a breach")


@dataclass(frozen=True)
class SoakFigures:
    """What a soak window holds for one zone: pairs, the new engine's errors and p95, legacy's p95, matches."""

    pairs: int
    new_errors: int
    accepted: int
    new_p95_ms: float | None
    legacy_p95_ms: float | None

    @property
    def error_rate(self) -> float | None:
        """The new engine's errors and timeouts, percent of the pairs (None without pairs)."""
        return 100.0 * self.new_errors / self.pairs if self.pairs else None

    @property
    def match_rate(self) -> float | None:
        """Accepted pairs, percent (None without pairs, never a made-up 100 %)."""
        return 100.0 * self.accepted / self.pairs if self.pairs else None

    def summary(self) -> str:
        """One line for a person."""
        if not self.pairs:
            return "no pairs"
        parts = [f"{self.pairs:,} pairs", f"new errors {self.error_rate:.2f} %", f"match {self.match_rate:.2f} %"]
        if self.new_p95_ms is not None:
            parts.append(f"new p95 {self.new_p95_ms:,.1f} ms" +
                         (f" (legacy {self.legacy_p95_ms:,.1f} ms)" if self.legacy_p95_ms is not None else ""))
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"pairs": self.pairs, "new_errors": self.new_errors, "error_rate": self.error_rate,
                "accepted": self.accepted, "match_rate": self.match_rate, "new_p95_ms": self.new_p95_ms,
                "legacy_p95_ms": self.legacy_p95_ms}


def _naive(when: datetime) -> datetime:
    return when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when


def _p95(conn: sa.Connection, where: list[sa.ColumnElement[bool]], column: sa.Column[Any], n: int) -> float | None:
    """Nearest-rank p95 (the value below which 95 % of the pairs fall), sorted in the database."""
    if not n:
        return None
    rank = math.ceil(0.95 * n)
    value = conn.execute(sa.select(column).where(*where).order_by(column).limit(1).offset(rank - 1)).scalar()
    return None if value is None else float(value)


def soak_figures(engine: Engine, zone: str, mode: str, since: datetime, until: datetime, *,
                 command: str | None = None, legacy_latency: bool = True) -> SoakFigures:
    """The SLA figures of the pairs received in [since, until) in a zone (any case) while it ran `mode`."""
    t = pair_results
    where: list[sa.ColumnElement[bool]] = [
        sa.func.lower(t.c.zone) == zone.lower(), t.c.received_at >= _naive(since), t.c.received_at < _naive(until),
        t.c.primary_target == ("new" if mode in ("reverse", "new") else "legacy"),
        ~t.c.command.startswith(RECONCILE_PREFIX)]
    if command is not None:
        where.append(t.c.command == command)
    unexplained = sa.exists(sa.select(1).select_from(differences.join(quirks, quirks.c.id == differences.c.quirk))
                            .where(differences.c.token == t.c.token, quirks.c.verdict.in_(_BLOCKING)))
    with engine.connect() as conn:
        pairs, errors, accepted = conn.execute(sa.select(
            sa.func.count(), sa.func.sum(sa.case((t.c.new_status.in_(_FAILED), 1), else_=0)),
            sa.func.sum(sa.case((t.c.matched, 1), (unexplained, 0), else_=1))).where(*where)).one()
        pairs = int(pairs or 0)
        new_p95 = _p95(conn, where, t.c.new_latency_ms, pairs)
        legacy_p95 = _p95(conn, where, t.c.legacy_latency_ms, pairs) if legacy_latency else None
    return SoakFigures(pairs, int(errors or 0), int(accepted or 0), new_p95, legacy_p95)


def judge(sla: SlaThresholds, mode: str, figures: SoakFigures, *, final: bool) -> list[str]:
    """The breaches in a soak's figures (empty: holds so far). Rates are judged once `min_pairs` pairs are in;
    at the end of the soak (`final`) too few pairs is itself a breach. A `new` soak is not measured here."""
    if mode not in MEASURED_MODES:
        return []
    if figures.pairs < sla.min_pairs:
        return [f"only {figures.pairs:,} pair(s) in the soak, {sla.min_pairs:,} needed: missing data never passes"] \
            if final else []
    found = []
    assert figures.error_rate is not None and figures.match_rate is not None
    if figures.error_rate > sla.max_error_rate:
        found.append(f"new error rate {figures.error_rate:.2f} % > {sla.max_error_rate:g} % "
                     f"({figures.new_errors:,} of {figures.pairs:,})")
    if sla.max_p95_ms is not None and figures.new_p95_ms is not None and figures.new_p95_ms > sla.max_p95_ms:
        found.append(f"new p95 latency {figures.new_p95_ms:,.1f} ms > {sla.max_p95_ms:g} ms")
    if sla.latency_factor is not None:
        if figures.new_p95_ms is None or figures.legacy_p95_ms is None:
            found.append("no latency figures for the p95 comparison: missing data never passes")
        elif figures.new_p95_ms > sla.latency_factor * figures.legacy_p95_ms:
            found.append(f"new p95 latency {figures.new_p95_ms:,.1f} ms > {sla.latency_factor:g} x legacy "
                         f"{figures.legacy_p95_ms:,.1f} ms")
    if figures.match_rate < sla.min_match_rate:
        found.append(f"match rate {figures.match_rate:.2f} % < {sla.min_match_rate:g} % "
                     f"({figures.pairs - figures.accepted:,} pair(s) with an open or reproduce difference)")
    return found
