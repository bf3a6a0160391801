"""What each triage page shows, read from the catalogue: plain data and escaped Markup for the templates.

Blocking (SQL, files): the app runs these in a worker thread. Nothing here writes; deciding goes through
`rules.triage`, the same functions `shadow quirks triage` and `shadow rules test` call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlencode

from markupsafe import Markup, escape

from reports import charts
from reports.entity import EntityPair, entity_history, parse_key
from reports.html import render_value, value_diff
from rules.catalogue import VERDICTS, Catalogue, Example, Quirk
from rules.transitions import DESCRIPTIONS, EXPLANATIONS, plain_words, value_type
from rules.triage import RulesTest, rule_file_for, suggested_rule_text
from shadow import audit
from shadow.model import Outcome, Pair

__all__ = ["ListQuery", "SORTS", "list_page", "quirk_page", "pairs_page", "describe", "words_html", "QUIRK_ID"]

SORTS = {"count": "most differences", "newest": "first seen, newest first", "first_seen": "first seen, oldest first",
         "last_seen": "last seen, most recent first"}
PER_PAGE = 50
QUIRK_ID = re.compile(r"^[0-9a-f]{6,32}$")
_TICKS = re.compile(r"`([^`]*)`")
_ABSENT = Markup('<span class="absent">(absent)</span>')


def describe(quirk: Quirk) -> str:
    """The quirk in plain words, using its first example to say which side does what."""
    example = quirk.example or (quirk.examples[0] if quirk.examples else None)
    legacy, new = (example.legacy, example.new) if example else (None, None)
    return plain_words(quirk.field, quirk.transition, quirk.change, legacy, new)


def words_html(text: str) -> Markup:
    """Plain words with `field names` as code: escaped first, then the backticks turned into <code>."""
    return Markup(_TICKS.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text))))


def _text(params: Mapping[str, str], name: str, limit: int = 200) -> str | None:
    value = (params.get(name) or "").strip()
    return value[:limit] or None


@dataclass(frozen=True)
class ListQuery:
    """The list's filters, sort and page, as the query string carries them."""

    verdict: str | None = None
    command: str | None = None
    zone: str | None = None
    owner: str | None = None
    q: str | None = None
    sort: str = "count"
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "ListQuery":
        """Read a query string; anything unknown or malformed falls back to the default."""
        verdict = _text(params, "verdict")
        sort = _text(params, "sort") or "count"
        try:
            page = max(1, min(int(params.get("page") or 1), 100_000))
        except ValueError:
            page = 1
        return cls(verdict=verdict if verdict in VERDICTS else None, command=_text(params, "command"),
                   zone=_text(params, "zone"), owner=_text(params, "owner"), q=_text(params, "q"),
                   sort=sort if sort in SORTS else "count", page=page)

    @property
    def filters(self) -> dict[str, str | None]:
        """The catalogue's filter arguments."""
        return {"verdict": self.verdict, "command": self.command, "zone": self.zone, "owner": self.owner,
                "text": self.q}

    def params(self, **changes: Any) -> dict[str, str]:
        """The non-default parameters, with changes applied."""
        changed = replace(self, **changes)
        out = {k: v for k, v in (("verdict", changed.verdict), ("command", changed.command), ("zone", changed.zone),
                                 ("owner", changed.owner), ("q", changed.q)) if v}
        if changed.sort != "count":
            out["sort"] = changed.sort
        if changed.page != 1:
            out["page"] = str(changed.page)
        return out

    def url(self, **changes: Any) -> str:
        """The list's URL with changes applied."""
        params = self.params(**changes)
        return "/" + ("?" + urlencode(params) if params else "")


# -- the list -------------------------------------------------------------------------------------

def _buckets(span: tuple[datetime, datetime] | None) -> tuple[list[datetime], timedelta, str]:
    """One shared time axis for every sparkline: hours over short spans, days (or weeks) over long ones."""
    if span is None:
        return [], timedelta(hours=1), "hour"
    first, last = span
    if last - first <= timedelta(days=3):
        step, unit = timedelta(hours=1), "hour"
    elif last - first <= timedelta(days=180):
        step, unit, first = timedelta(days=1), "day", first.replace(hour=0)
    else:
        step, unit, first = timedelta(weeks=1), "week", first.replace(hour=0) - timedelta(days=first.weekday())
    count = int((last - first) / step) + 1
    return [first + step * i for i in range(min(count, 400))], step, unit


def _spark_values(buckets: list[datetime], step: timedelta, timeline: list[tuple[datetime, int]]) -> list[int]:
    values = [0] * len(buckets)
    if not buckets:
        return values
    start = buckets[0]
    for when, n in timeline:
        index = int((when - start) / step)
        if 0 <= index < len(values):
            values[index] += n
    return values


def _is_new(quirk: Quirk, since: datetime | None) -> bool:
    return since is not None and quirk.first_seen is not None and quirk.first_seen > since


def list_page(catalogue: Catalogue, query: ListQuery, since: datetime | None, *, per_page: int = PER_PAGE) -> dict[str, Any]:
    """The quirk list: one page of quirks under the filters, each with its plain words and sparkline."""
    total = catalogue.count_quirks(**query.filters)
    pages = max(1, -(-total // per_page))
    query = replace(query, page=min(query.page, pages))
    found = catalogue.quirks(**query.filters, sort=query.sort, limit=per_page, offset=(query.page - 1) * per_page)
    buckets, step, unit = _buckets(catalogue.hour_span())
    timelines = catalogue.timelines([q.id for q in found], by="hour" if unit == "hour" else "day")
    rows = []
    for index, quirk in enumerate(found):
        position = (query.page - 1) * per_page + index
        values = _spark_values(buckets, step, timelines.get(quirk.id, []))
        rows.append({
            "quirk": quirk, "words": words_html(describe(quirk)), "new": _is_new(quirk, since),
            "href": f"/quirks/{quirk.id}?" + urlencode({**query.params(page=1), "i": position}),
            "zones": sorted(quirk.zones.items(), key=lambda kv: (-kv[1], kv[0])),
            "spark": charts.sparkline(values, label=f"differences per {unit}, {quirk.id}"),
        })
    return {"query": query, "rows": rows, "total": total, "pages": pages, "facets": catalogue.facets(),
            "sorts": SORTS, "verdicts": VERDICTS, "since": since, "unit": unit,
            "first": (query.page - 1) * per_page + 1 if rows else 0, "last": (query.page - 1) * per_page + len(rows),
            "new_count": sum(1 for r in rows if r["new"])}


# -- one quirk --------------------------------------------------------------------------------------

def _sides(quirk: Quirk, example: Example) -> tuple[Markup, Markup, tuple[str, str] | None]:
    legacy_absent, new_absent = quirk.change == "added", quirk.change == "removed"
    if legacy_absent or new_absent:
        legacy = _ABSENT if legacy_absent else Markup(escape(render_value(example.legacy)))
        new = _ABSENT if new_absent else Markup(escape(render_value(example.new)))
        return legacy, new, None
    legacy, new = value_diff(render_value(example.legacy), render_value(example.new))
    types = (value_type(example.legacy), value_type(example.new))
    return legacy, new, types if types[0] != types[1] else None


def _outcome_rows(legacy: Outcome, new: Outcome) -> list[dict[str, Any]]:
    """Both outcomes, part by part, with what differs marked (whole JSON documents, diffed line by line)."""
    rows = [{"name": "status", "legacy": Markup(escape(f"{legacy.status.value} {legacy.http_status or ''}".strip())),
             "new": Markup(escape(f"{new.status.value} {new.http_status or ''}".strip()))}]
    for name in ("response", "state", "error"):
        a, b = getattr(legacy, name), getattr(new, name)
        if a is None and b is None:
            continue
        one, two = value_diff(render_value(a), render_value(b))
        rows.append({"name": name, "legacy": one, "new": two})
    rows.append({"name": "latency", "legacy": Markup(f"{legacy.latency_ms:,.1f} ms"),
                 "new": Markup(f"{new.latency_ms:,.1f} ms")})
    return rows


def _key_links(keys: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value, "href": "/pairs?" + urlencode({"key": f"{name}={value}"}),
             "command": f"shadow pairs show --key {name}={value}"} for name, value in sorted(keys.items())]


def _example(quirk: Quirk, example: Example, keys: dict[str, str], pair: Pair | None) -> dict[str, Any]:
    legacy, new, types = _sides(quirk, example)
    whole = None
    if pair is not None:
        whole = {"command": pair.command, "payload": render_value(pair.command.payload), "primary": pair.primary.value,
                 "outcomes": _outcome_rows(pair.legacy, pair.new)}
    return {"example": example, "legacy": legacy, "new": new, "types": types, "entity_keys": _key_links(keys),
            "whole": whole}


def _neighbours(catalogue: Catalogue, query: ListQuery, quirk_id: str, position: int | None) -> dict[str, Any]:
    """The previous and next quirk in the list this one was opened from (same filters and sort)."""
    if position is None or position < 0:
        return {"previous": None, "next": None}
    start = max(position - 1, 0)
    around = catalogue.quirks(**query.filters, sort=query.sort, limit=3, offset=start)
    ids = [q.id for q in around]
    if quirk_id not in ids:
        return {"previous": None, "next": None}
    at = ids.index(quirk_id)
    base = query.params(page=1)

    def link(i: int) -> str | None:
        if 0 <= i < len(ids) and i != at:
            return f"/quirks/{ids[i]}?" + urlencode({**base, "i": start + i})
        return None

    return {"previous": link(at - 1), "next": link(at + 1)}


def quirk_page(catalogue: Catalogue, rules_folder: Path, quirk_id: str, query: ListQuery, position: int | None,
               since: datetime | None, *, examples: int = 5) -> dict[str, Any]:
    """One quirk: what it is, its examples side by side, its rule file, its history, and its neighbours."""
    quirk = catalogue.quirk(quirk_id, examples=examples)
    stored = catalogue.pairs_by_token([e.token for e in quirk.examples])
    buckets, step, unit = _buckets(catalogue.hour_span())
    by = "hour" if unit == "hour" else "day"
    values = _spark_values(buckets, step, catalogue.timelines([quirk.id], by=by).get(quirk.id, []))
    window = f"{buckets[0]:%Y-%m-%d %H:%M} – {buckets[-1] + step:%Y-%m-%d %H:%M} UTC" if buckets else ""
    path = rule_file_for(rules_folder, quirk.id)
    rule_text = path.read_text(encoding="utf-8") if path.exists() else None
    history = audit.entries(catalogue.engine, subject=f"quirk:{quirk.id}")
    return {
        "quirk": quirk, "words": words_html(describe(quirk)), "new": _is_new(quirk, since), "since": since,
        "description": DESCRIPTIONS.get(quirk.transition, quirk.transition),
        "explanation": words_html(EXPLANATIONS.get(quirk.transition, "")),
        "zones": sorted(quirk.zones.items(), key=lambda kv: (-kv[1], kv[0])),
        "spark": charts.sparkline(values, label=f"differences per {unit}", width=480, height=48), "unit": unit,
        "window": window,
        "examples": [_example(quirk, e, *stored.get(e.token, ({}, None))) for e in quirk.examples],
        "rule": {"name": path.name, "text": rule_text, "exists": rule_text is not None,
                 "draft": rule_text if rule_text is not None else suggested_rule_text(quirk)},
        "history": [_history_line(e) for e in reversed(history)], "verdicts": VERDICTS,
        "back": query.url(), "query": query, **_neighbours(catalogue, query, quirk.id, position),
    }


def _history_line(entry: audit.AuditEntry) -> dict[str, Any]:
    detail = entry.detail
    if entry.action == "verdict":
        what = f"{detail.get('from')} → {detail.get('to')}"
    elif entry.action == "rule":
        what = "rule file " + ("created" if detail.get("created") else "changed")
    else:
        what = entry.action
    return {"at": entry.at, "actor": entry.actor, "action": entry.action, "what": what, "note": detail.get("note"),
            "ticket": detail.get("ticket"), "file": detail.get("rule_file"), "seq": entry.seq}


def preview_view(report: RulesTest, catalogue: Catalogue) -> dict[str, Any]:
    """What a rule change would do, with the quirks it touches in plain words."""
    touched = sorted(set(report.matched) | set(report.closed) | set(report.appeared) | set(report.verdicts))
    known = {q.id: q for q in catalogue.quirks(ids=touched)} if touched else {}
    lines = []
    for quirk_id in touched:
        quirk = known.get(quirk_id)
        lines.append({"id": quirk_id, "words": words_html(describe(quirk)) if quirk else Markup("(a new quirk)"),
                      "matched": report.matched.get(quirk_id, 0), "closed": quirk_id in report.closed,
                      "appeared": report.appeared.get(quirk_id, 0), "verdict": report.verdicts.get(quirk_id)})
    return {"report": report, "lines": lines}


# -- the entity audit ---------------------------------------------------------------------------------

def pairs_page(catalogue: Catalogue, key: str, *, limit: int = 200) -> dict[str, Any]:
    """Every stored pair that touched one entity, oldest first (`shadow pairs show --key …`)."""
    name, value = parse_key(key)
    history: list[EntityPair] = entity_history(catalogue, name, value, limit=limit)
    rows = []
    for p in history:
        outcomes = None
        if p.legacy is not None and p.new is not None:
            outcomes = []
            for part in ("response", "state"):
                one, two = value_diff(render_value(p.legacy.get(part)), render_value(p.new.get(part)))
                outcomes.append({"name": part, "legacy": one, "new": two})
        rows.append({"pair": p, "payload": render_value(p.payload) if p.payload is not None else None,
                     "outcomes": outcomes,
                     "differences": [{"d": d, "legacy": Markup(escape(render_value(d.legacy))),
                                      "new": Markup(escape(render_value(d.new)))} for d in p.differences]})
    return {"name": name, "value": value, "key": f"{name}={value}", "rows": rows, "limit": limit,
            "command": f"shadow pairs show --key {name}={value}"}
