"""Browser fixtures: Debian's Chromium driven by Playwright (never `playwright install`), and a catalogue with history.

The browser is launched once per module; each test gets a fresh page. Tests skip, saying why, only when
/usr/bin/chromium is missing (`make test` installs it with apt-get).
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from reports.query import Report, Scope, build_report
from reports.snapshots import record
from rules.catalogue import Catalogue, open_catalogue
from rules.triage import triage
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
SCRIPT_PAYLOAD = "<script>alert(1)</script>"
ATTRIBUTE_PAYLOAD = '"><img src=x onerror=alert(1)>'

BASE = datetime(2026, 9, 7, 0, 0, tzinfo=timezone.utc)
WEEKS = 8
KINDS = ("assign_load", "reassign_load", "cancel_load", "create_load", "update_stop_eta")
ZONES = ("chi", "nyc", "lax", "den")


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """One way the two engines differ: the field, both values, which commands, how often, and its story."""

    field: str
    legacy: object
    new: object
    kinds: tuple[str, ...]
    chance: float
    verdict: str | None = None       # decided in week `decided`
    decided: int = 0
    fixed_from_day: int | None = None  # the new engine reproduces legacy from this day on
    first_day: int = 0


STOPS = [{"seq": 2, "address": "5409 Industrial Pkwy"}, {"seq": 1, "address": "3801 Main St"}]
BEHAVIOURS = [
    Behaviour("status", "A", "assigned", ("assign_load", "reassign_load"), 0.5, "retire", 1),
    Behaviour("driver_name", "Ann Smith       ", "Ann Smith", ("assign_load", "reassign_load"), 0.45, "retire", 2),
    Behaviour("zone_code", "CHI", "chi", KINDS, 0.25, "retire", 3),
    Behaviour("pickup_at", "2026-09-01T10:00:00", "2026-09-01T15:00:00Z", ("create_load",), 0.6, "reproduce", 1,
              fixed_from_day=24),
    Behaviour("weight_kg", "10631.00", 10631, ("create_load",), 0.35, "reproduce", 2, fixed_from_day=33),
    Behaviour("price", 474.63, 474.62, ("create_load", "cancel_load"), 0.3, "reproduce", 4, fixed_from_day=40),
    Behaviour("cancel_reason", "", None, ("cancel_load",), 0.7, "retire", 5),
    Behaviour("updated_at", "2026-09-01T10:00:00.120Z", "2026-09-01T10:00:00.121Z", KINDS, 0.15, "noise", 1),
    Behaviour("hazmat", 0, False, ("create_load",), 0.25, "retire", 6),
    Behaviour("stops", STOPS, sorted(STOPS, key=lambda s: s["seq"]), ("update_stop_eta",), 0.35),
    Behaviour("instructions", SCRIPT_PAYLOAD, ATTRIBUTE_PAYLOAD, ("update_stop_eta",), 0.12),
    Behaviour("contact", "Zoë\u00a0Ng", "Zoë Ng", ("assign_load",), 0.06),
    Behaviour("depot", "DEPOT-2", "DEPOT-1", ("assign_load", "cancel_load"), 0.5, first_day=7 * (WEEKS - 1)),
]


def _pair(rng: random.Random, n: int, day: int) -> Pair:
    kind = KINDS[n % len(KINDS)]
    zone = rng.choice(ZONES)
    when = BASE + timedelta(days=day, hours=rng.randrange(6, 22), minutes=rng.randrange(60))
    legacy: dict[str, object] = {"load_id": f"L-{n:05d}", "kind": kind}
    new: dict[str, object] = dict(legacy)
    for b in BEHAVIOURS:
        if kind not in b.kinds or day < b.first_day or rng.random() >= b.chance * (1 - day / 90):
            continue
        legacy[b.field] = b.legacy
        new[b.field] = b.legacy if b.fixed_from_day is not None and day >= b.fixed_from_day else b.new
    status = Status.TIMEOUT if n % 211 == 7 else Status.OK
    return Pair(
        command=Command(kind=kind, token=f"tok-{n:05d}", zone=zone, keys={"load_id": f"L-{n:05d}"}, received_at=when),
        legacy=Outcome(target=Target.LEGACY, status=Status.OK, http_status=200, state=legacy,
                       latency_ms=rng.lognormvariate(2.4, 0.45)),
        new=Outcome(target=Target.NEW, status=status, http_status=200, state=new,
                    latency_ms=rng.lognormvariate(1.8, 0.6) * (30 if status is Status.TIMEOUT else 1)),
    )


def fill_catalogue(catalogue: Catalogue, rules_folder: Path, *, per_day: int = 28) -> Report:
    """Eight weeks of pairs compared a week at a time, quirks triaged as the weeks go, a report snapshot after
    each of the first seven; returns the report after the eighth (its trend holds the seven snapshots)."""
    rng = random.Random(7)
    rules_folder.mkdir(parents=True, exist_ok=True)
    n = 0
    report = None
    for week in range(WEEKS):
        pairs = []
        for day in range(week * 7, week * 7 + 7):
            for _ in range(per_day):
                pairs.append(_pair(rng, n, day))
                n += 1
        compare_into(pairs, catalogue, rules_folder=rules_folder, detect_noise=False)
        for b in BEHAVIOURS:
            if b.verdict and b.decided == week:
                quirk = next(q for q in catalogue.quirks() if q.field == b.field)
                triage(catalogue, rules_folder, quirk.id, b.verdict, owner="dana", note=f"week {week}: {b.field}",
                       ticket=f"DISP-{800 + week}")
        report = dataclasses.replace(build_report(catalogue, Scope()), generated_at=BASE + timedelta(weeks=week + 1))
        if week < WEEKS - 1:
            record(catalogue, report)
    assert report is not None
    return report


@pytest.fixture(scope="module")
def history_report(tmp_path_factory) -> Report:
    """The report over a catalogue with eight weeks of history (see `fill_catalogue`)."""
    folder = tmp_path_factory.mktemp("history")
    catalogue = open_catalogue(f"sqlite:///{folder / 'catalogue.db'}")
    try:
        # a fixed catalogue address, so the screenshot does not change with the temporary folder
        yield dataclasses.replace(fill_catalogue(catalogue, folder / "rules"),
                                  catalogue="postgresql+psycopg://shadow:***@db/catalogue")
    finally:
        catalogue.close()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, launched once per module."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (make test does, with apt-get)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
