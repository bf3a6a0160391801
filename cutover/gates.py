"""Readiness gates for a zone, evaluated from the catalogue (DESIGN.md, "Cutover semantics").

Each gate prints pass/fail with its figure and threshold. Missing or stale data
fails a gate, never passes it: a zone with no recent pairs is not ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from cutover.routing import mode_for
from reports.query import Scope, error_counts, latency
from rules.catalogue import Catalogue
from rules.compare import RECONCILE
from rules.schema import differences, pair_hours, pair_results, quirk_hours, quirks
from shadow.config import Config, GateConfig

__all__ = ["GateResult", "evaluate_gates", "shadow_side"]

_BLOCKING = ("open", "reproduce")


@dataclass(frozen=True)
class GateResult:
    """One gate: what it checks, for which command kind, its figure against its threshold.

    `pinned` gates read the last N pairs up to an instant, so their figure is fixed for that instant;
    window gates read the current hour's roll-ups too, so their figure moves with live traffic.
    """

    gate: str
    command: str | None
    passed: bool
    figure: str
    threshold: str
    detail: str = ""
    pinned: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (also what a plan id hashes)."""
        return {"gate": self.gate, "command": self.command, "passed": self.passed, "figure": self.figure,
                "threshold": self.threshold, "detail": self.detail, "pinned": self.pinned}


def shadow_side(config: Config, zone: str, command: str | None = None) -> str:
    """The target whose outcomes are only compared in this zone: `new`, or `legacy` once in reverse."""
    return "legacy" if mode_for(config.routing, zone, command) in ("reverse", "new") else "new"


def _commands(conn: sa.Connection, config: Config, zone: str, command: str | None) -> list[str]:
    if command:
        return [command]
    declared = sorted({route.command for route in config.routes})
    if declared:
        return declared
    return sorted(c for (c,) in conn.execute(sa.select(sa.distinct(pair_hours.c.command)).where(
        pair_hours.c.zone == zone, pair_hours.c.pairs > 0, ~pair_hours.c.command.startswith(RECONCILE))))


def _last_pairs(conn: sa.Connection, zone: str, command: str, n: int,
                as_of: datetime) -> tuple[int, int, datetime | None]:
    """Over the last n pairs (up to as_of) of a command kind in a zone: how many, how many accepted, the newest."""
    last = (sa.select(pair_results.c.token, pair_results.c.received_at)
            .where(pair_results.c.zone == zone, pair_results.c.command == command,
                   pair_results.c.received_at <= as_of.astimezone(timezone.utc).replace(tzinfo=None))
            .order_by(pair_results.c.received_at.desc()).limit(n).subquery())
    unexplained = sa.exists(sa.select(1).select_from(differences.join(quirks, quirks.c.id == differences.c.quirk))
                            .where(differences.c.token == last.c.token, quirks.c.verdict.in_(_BLOCKING)))
    pairs, accepted, newest = conn.execute(sa.select(
        sa.func.count(), sa.func.sum(sa.case((unexplained, 0), else_=1)), sa.func.max(last.c.received_at))).one()
    return int(pairs or 0), int(accepted or 0), newest.replace(tzinfo=timezone.utc) if newest else None


def evaluate_gates(catalogue: Catalogue, config: Config, zone: str, *, command: str | None = None,
                   now: datetime | None = None) -> list[GateResult]:
    """Every gate for a zone (optionally one command kind), read from the catalogue and the config's thresholds."""
    limits: GateConfig = config.cutover.gates
    now = now or datetime.now(timezone.utc)
    # The per-command gates are taken as of one instant (the last N pairs received up to it): evaluated
    # again at that instant, their figures only move when the past changed (late pairs, a verdict decided
    # since). The window gates read hourly roll-ups: their window runs to the end of the current hour.
    since = now - timedelta(hours=limits.window_hours)
    stale_before = now - timedelta(hours=limits.stale_after_hours)
    shadow = shadow_side(config, zone, command)
    primary = "new" if shadow == "legacy" else "legacy"
    out: list[GateResult] = []
    with catalogue.engine.connect() as conn:
        commands = _commands(conn, config, zone, command)
        if not commands:
            out.append(GateResult("sample size", None, False, "no pairs", f">= {limits.min_pairs:,} per command kind",
                                  f"no pair for zone {zone!r} in the catalogue"))
        for kind in commands:
            pairs, accepted, newest = _last_pairs(conn, zone, kind, limits.last_pairs, now)
            fresh = newest is not None and newest >= stale_before
            # The figure is the newest pair's time, not its age: it moves only when pairs arrive, so a plan's
            # figures stay comparable until then.
            newest_text = "no pairs" if newest is None else f"newest pair {newest:%Y-%m-%d %H:%M:%S} UTC"
            out.append(GateResult("fresh data", kind, fresh, newest_text, f"within {limits.stale_after_hours:g} h",
                                  pinned=True))
            out.append(GateResult("sample size", kind, pairs >= limits.min_pairs, f"{pairs:,} pairs",
                                  f">= {limits.min_pairs:,} (of the last {limits.last_pairs:,})", pinned=True))
            rate = accepted / pairs if pairs else None
            ok = fresh and rate is not None and rate * 100 >= limits.match_rate
            out.append(GateResult("match rate", kind, ok, "no pairs" if rate is None else f"{rate:.3%}",
                                  f">= {limits.match_rate:g} % over the last {limits.last_pairs:,} pairs",
                                  "" if fresh else "stale data never passes", pinned=True))
        scope = Scope(since=since, until=now, zone=zone, command=command)
        pairs_in_window = conn.execute(sa.select(sa.func.sum(pair_hours.c.pairs))
                                       .where(*scope.where(pair_hours))).scalar_one() or 0
        blocking = conn.execute(
            sa.select(quirks.c.id, quirks.c.verdict, quirks.c.field, sa.func.sum(quirk_hours.c.differences))
            .join(quirks, quirks.c.id == quirk_hours.c.quirk)
            .where(quirks.c.verdict.in_(_BLOCKING), *scope.where(quirk_hours))
            .group_by(quirks.c.id, quirks.c.verdict, quirks.c.field)
            .having(sa.func.sum(quirk_hours.c.differences) > 0).order_by(quirks.c.id)).all()
        out.append(GateResult("no open or reproduce quirk", command, bool(pairs_in_window) and not blocking,
                              f"{len(blocking)} quirk(s)" if pairs_in_window else "no pairs",
                              f"0 in the last {limits.window_hours:g} h",
                              ", ".join(f"{q} ({v}: {f})" for q, v, f, _n in blocking[:10])
                              if pairs_in_window else "no pair in the window: nothing shows the zone is clean"))
        legacy_errors, new_errors = error_counts(conn, scope)
        errors = new_errors if shadow == "new" else legacy_errors
        error_rate = errors / pairs_in_window if pairs_in_window else None
        out.append(GateResult(f"{shadow} error rate", command,
                              error_rate is not None and error_rate * 100 <= limits.max_error_rate,
                              "no pairs" if error_rate is None else f"{error_rate:.3%} ({errors:,} of {pairs_in_window:,})",
                              f"<= {limits.max_error_rate:g} % in the last {limits.window_hours:g} h"))
        latencies = latency(conn, scope)
    ours, theirs = latencies.get(shadow), latencies.get(primary)
    if ours is None or theirs is None or ours.p95 is None or theirs.p95 is None:
        out.append(GateResult(f"{shadow} p95 latency", command, False, "no pairs",
                              f"<= {limits.latency_factor:g} x {primary} p95"))
    else:
        out.append(GateResult(f"{shadow} p95 latency", command, ours.p95 <= limits.latency_factor * theirs.p95,
                              f"{ours.p95:,.1f} ms vs {primary} {theirs.p95:,.1f} ms",
                              f"<= {limits.latency_factor:g} x {primary} p95"))
    return out
