"""Trend snapshots: each `shadow report` run leaves one small row, so reports show progress across runs.

This is the only thing a report writes to the catalogue.
"""

from __future__ import annotations

from datetime import timezone
from typing import TYPE_CHECKING

import orjson
import sqlalchemy as sa

from rules.catalogue import Catalogue
from rules.schema import report_snapshots

if TYPE_CHECKING:
    from reports.query import Report, Scope, Snapshot

__all__ = ["history", "record"]


def history(catalogue: Catalogue, scope: "Scope", *, limit: int = 200) -> list["Snapshot"]:
    """The latest snapshots taken for this scope, oldest first."""
    from reports.query import Snapshot

    t = report_snapshots
    with catalogue.engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.scope == scope.label)
                            .order_by(t.c.taken_at.desc(), t.c.id.desc()).limit(limit)).mappings().all()
    out = []
    for row in reversed(rows):
        detail = orjson.loads(row["detail"])
        out.append(Snapshot(taken_at=row["taken_at"].replace(tzinfo=timezone.utc), pairs=row["pairs"],
                            matched=row["matched"], accepted=row["accepted"], verdicts=detail.get("verdicts", {}),
                            by_command=detail.get("by_command", {}), quirk_ids=detail.get("quirks", [])))
    return out


def record(catalogue: Catalogue, report: "Report") -> None:
    """Keep the report's headline figures: match rate, quirks per verdict, per-command rates, quirk ids."""
    detail = {"verdicts": report.verdicts, "by_command": {m.name: m.rate for m in report.by_command},
              "quirks": sorted(q.quirk.id for q in report.quirks)}
    with catalogue.engine.begin() as conn:
        conn.execute(report_snapshots.insert().values(
            taken_at=report.generated_at.astimezone(timezone.utc).replace(tzinfo=None), scope=report.scope.label,
            pairs=report.overall.pairs, matched=report.overall.matched, accepted=report.accepted.matched,
            detail=orjson.dumps(detail).decode()))
