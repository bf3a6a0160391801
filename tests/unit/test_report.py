"""`shadow report` and `shadow pairs show` over a known catalogue: exact counts in every format, filters, gate."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from junitparser import Failure, JUnitXml
from rich.console import Console
from typer.testing import CliRunner

from reports.entity import entity_history
from reports.junit import Gate, evaluate, write_junit
from reports.query import Scope, build_report, parse_when
from reports.snapshots import record
from reports.tables import COLUMNS, export, frames
from reports.terminal import render_terminal
from rules.catalogue import Catalogue
from rules.schema import metadata, report_snapshots
from rules.triage import triage
from shadow.cli import app
from shadow.errors import InputError
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into

BASE = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
runner = CliRunner()


def pair(n: int, *, kind: str, zone: str, hour: int, padded: bool = False, upper: bool = False,
         new_status: Status = Status.OK, legacy_ms: float = 10.0, new_ms: float = 20.0, load: str | None = None) -> Pair:
    legacy = {"driver": "Ann   " if padded else "Ann", "zone": zone.upper() if upper else zone}
    return Pair(
        command=Command(kind=kind, token=f"t{n:04d}", zone=zone, keys={"load_id": load or f"L-{n}", "driver_id": "D-1"},
                        payload={"n": n}, received_at=BASE + timedelta(hours=hour, minutes=n % 60)),
        legacy=Outcome(target=Target.LEGACY, status=Status.OK, http_status=200, response={"ok": True}, state=legacy,
                       latency_ms=legacy_ms),
        new=Outcome(target=Target.NEW, status=new_status, http_status=200 if new_status is Status.OK else None,
                    response={"ok": True}, state={"driver": "Ann", "zone": zone}, latency_ms=new_ms),
    )


def known_pairs() -> list[Pair]:
    """100 pairs: 60 assign_load in chi (hour 0), 40 cancel_load in nyc (hour 2).

    assign_load: 10 padded driver names, 5 upper-case zones (2 of them also padded) → 13 mismatched.
    cancel_load: 4 padded, 1 new-side timeout (matched otherwise? no: a timeout differs in status) → 5 mismatched.
    """
    out = []
    for n in range(60):
        out.append(pair(n, kind="assign_load", zone="chi", hour=0, padded=n < 10, upper=8 <= n < 13,
                        legacy_ms=10.0, new_ms=20.0 if n < 59 else 400.0, load="L-X" if n in (3, 30) else None))
    for n in range(60, 100):
        out.append(pair(n, kind="cancel_load", zone="nyc", hour=2, padded=n < 64,
                        new_status=Status.TIMEOUT if n == 99 else Status.OK, load="L-X" if n == 61 else None))
    return out


@pytest.fixture()
def known(catalogue: Catalogue) -> Catalogue:
    """The catalogue fixture (SQLite here, Postgres in the integration suite) holding `known_pairs`."""
    compare_into(known_pairs(), catalogue)
    return catalogue


def store_of(catalogue: Catalogue) -> str:
    return catalogue.engine.url.render_as_string(hide_password=False)


def quirk_of(report, field: str):
    return next(line for line in report.quirks if line.quirk.field == field)


def test_the_report_has_exactly_the_known_counts(known: Catalogue) -> None:
    report = build_report(known)
    assert (report.overall.pairs, report.overall.matched) == (100, 100 - 13 - 5)
    assert [(m.name, m.pairs, m.matched) for m in report.by_command] == [("assign_load", 60, 47), ("cancel_load", 40, 35)]
    assert [(m.name, m.pairs, m.matched) for m in report.by_zone] == [("chi", 60, 47), ("nyc", 40, 35)]
    assert report.errors == {"legacy": 0, "new": 1}
    assert quirk_of(report, "driver").differences == 14 and quirk_of(report, "zone").differences == 5
    assert report.verdicts == {"open": len(report.quirks)}
    assert report.latency["legacy"].pairs == 100
    assert 9.5 < report.latency["legacy"].p50 < 10.5 and 19 < report.latency["new"].p50 < 21
    assert report.latency["new"].p99 < 25 and max(u for _l, u, _n in report.latency["new"].histogram) > 400
    assert [(p.start.hour, p.pairs, p.matched) for p in report.timeline] == [(10, 60, 47), (12, 40, 35)]
    assert report.first_pair == BASE and report.bucket == "hour"
    assert report.differences_by_command["assign_load"] == 15


def test_zone_command_and_window_filter_the_report(known: Catalogue) -> None:
    chi = build_report(known, Scope(zone="chi"))
    assert (chi.overall.pairs, chi.overall.matched) == (60, 47)
    assert {line.quirk.field for line in chi.quirks} == {"driver", "zone"}
    assert quirk_of(chi, "driver").differences == 10
    cancel = build_report(known, Scope(command="cancel_load"))
    assert cancel.overall.pairs == 40 and [m.name for m in cancel.by_zone] == ["nyc"]
    late = build_report(known, Scope(since=BASE + timedelta(hours=1, minutes=30)))  # whole hours: from 11:00
    assert late.overall.pairs == 40 and late.by_command[0].name == "cancel_load"
    early = build_report(known, Scope(until=BASE + timedelta(minutes=5)))  # rounded up to 11:00
    assert early.overall.pairs == 60
    empty = build_report(known, Scope(zone="nowhere"))
    assert empty.overall.pairs == 0 and empty.overall.rate is None and empty.quirks == []


def test_accepted_match_rate_counts_retired_and_noise_quirks_as_matched(known: Catalogue, tmp_path: Path) -> None:
    report = build_report(known)
    triage(known, tmp_path / "rules", quirk_of(report, "driver").quirk.id, "retire", owner="po")
    after = build_report(known)
    # Pairs whose only difference was the padded driver are accepted now; the upper-case zones still are not.
    assert after.accepted.matched == 100 - 5 - 1  # 5 zone quirks, 1 timeout
    assert {m.name: m.matched for m in after.accepted_by_command} == {"assign_load": 55, "cancel_load": 39}
    assert after.verdicts == {"open": len(after.quirks) - 1, "retire": 1}


def test_a_report_never_writes_to_the_catalogue_but_its_snapshot(known: Catalogue, tmp_path: Path) -> None:
    def dump() -> dict[str, list]:
        with known.engine.connect() as conn:
            return {t.name: sorted(map(tuple, conn.execute(sa.select(t)).all()), key=repr)
                    for t in metadata.sorted_tables if t is not report_snapshots}

    before = dump()
    result = runner.invoke(app, ["report", "--store", store_of(known), "-f", "json", "-o", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert dump() == before
    with known.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(report_snapshots)).scalar_one() == 1


def test_quirks_new_since_the_previous_report_are_marked(known: Catalogue) -> None:
    first = build_report(known)
    assert first.previous is None and first.new_quirks == []
    record(known, first)
    compare_into([pair(500, kind="assign_load", zone="chi", hour=3, padded=False)], known)
    extra = pair(501, kind="assign_load", zone="chi", hour=3)
    extra.new.state = {**extra.new.state, "eta": "soon"}
    compare_into([extra], known)
    second = build_report(known)
    assert second.previous is not None and [line.quirk.field for line in second.new_quirks] == ["eta"]
    record(known, second)
    third = build_report(known)
    assert len(third.trend) == 2 and third.new_quirks == [] and third.trend[-1].pairs == 102


def test_tables_in_every_format_hold_the_scoped_rows(known: Catalogue, tmp_path: Path) -> None:
    report = build_report(known, Scope(zone="chi"))
    for fmt, read in (("parquet", pd.read_parquet), ("csv", pd.read_csv),
                      ("json", lambda p: pd.read_json(p, lines=True))):
        written = export(known, report, fmt, tmp_path / fmt, chunk=7)
        tables = {p.stem: read(p) for p in written if p.stem != "report"}
        assert len(tables["pair_results"]) == 60 and int(tables["pair_results"]["matched"].sum()) == 47
        assert len(tables["differences"]) == 15
        assert set(tables["quirks"]["field"]) == {"driver", "zone"}
        for name, frame in tables.items():
            assert list(frame.columns) == [c.name for c in COLUMNS[name]]
    assert json.loads((tmp_path / "json" / "report.json").read_text())["overall"]["pairs"] == 60


def test_frames_are_dataframes_for_notebooks(known: Catalogue) -> None:
    found = frames(store_of(known), Scope(command="cancel_load"))
    assert len(found["pair_results"]) == 40 and len(found["differences"]) == 4 + 2  # the timeout: status and http_status
    assert str(found["pair_results"]["received_at"].dtype).startswith("datetime64")


def test_terminal_report_shows_rates_latency_quirks_and_window(known: Catalogue) -> None:
    console = Console(record=True, width=200)
    render_terminal(build_report(known), console)
    text = console.export_text()
    for expected in ("82.00%", "82 of 100 pairs", "assign_load", "78.33%", "87.50%", "nyc", "p99",
                     "driver: one side pads the value with trailing whitespace", "2026-11-02 10:00 UTC",
                     "first report of this scope", "new errors/timeouts 1 (1.00%)"):
        assert expected in text, expected


def test_junit_gate_fails_on_open_quirks_and_low_match_rate(known: Catalogue, tmp_path: Path) -> None:
    report = build_report(known)
    result = evaluate(report, Gate(99.5, frozenset({"open", "reproduce"})))
    xml = JUnitXml.fromfile(str(write_junit(report, result, tmp_path / "r.xml")))
    suites = {s.name: s for s in xml}
    assert set(suites) == {"assign_load", "cancel_load"}
    cases = {c.name: c for c in suites["assign_load"]}
    assert len(cases) == 1 + 2  # match rate + the two quirks assign_load showed (driver, zone)
    assert all(isinstance(c.result[0], Failure) for c in cases.values())
    assert not result.passed


def test_junit_gate_passes_once_quirks_are_decided(known: Catalogue, tmp_path: Path) -> None:
    report = build_report(known)
    for line in report.quirks:  # all but the timeout's quirks (status, http_status)
        verdict = "noise" if line.quirk.field.startswith("@") else "retire"
        triage(known, tmp_path / "rules", line.quirk.id, verdict, owner="po")
    store = store_of(known)
    passing = runner.invoke(app, ["report", "--store", store, "--junit", str(tmp_path / "ok.xml"),
                                  "--min-match-rate", "99", "--fail-on", "open,reproduce", "--no-snapshot"])
    assert passing.exit_code == 0, passing.output
    xml = JUnitXml.fromfile(str(tmp_path / "ok.xml"))
    assert sum(s.failures for s in xml) == 0 and sum(s.tests for s in xml) > 2
    triage(known, tmp_path / "rules", quirk_of(report, "@status").quirk.id, "reproduce", owner="po")
    failing = runner.invoke(app, ["report", "--store", store, "--junit", str(tmp_path / "no.xml"),
                                  "--min-match-rate", "99", "--fail-on", "reproduce", "--no-snapshot"])
    assert failing.exit_code == 1, failing.output
    assert "cancel_load: accepted match rate 97.500 % < 99.0 %" in failing.output
    failures = [c for s in JUnitXml.fromfile(str(tmp_path / "no.xml")) for c in s if c.result]
    assert sorted(c.name.split(":")[0] for c in failures) == ["match rate", "quirk " + quirk_of(report, "@status").quirk.id]


def test_the_gate_never_passes_on_no_data(known: Catalogue) -> None:
    result = evaluate(build_report(known, Scope(zone="nowhere")), Gate(0.0, frozenset()))
    assert not result.passed and result.failures[0].kind == "no-data"


def test_bad_gate_and_time_options_are_refused_with_a_hint(known: Catalogue) -> None:
    store = store_of(known)
    for args, words in ((["--fail-on", "opn"], "not a verdict"), (["--min-match-rate", "120"], "percentage"),
                        (["--since", "last tuesday"], "not a time"), (["-f", "xml"], "not one of"),
                        (["-f", "html"], "needs --output")):
        result = runner.invoke(app, ["report", "--store", store, "--no-snapshot", *args])
        assert result.exit_code == 2 and words in result.output, (args, result.output)


def test_parse_when_takes_iso_and_durations() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    assert parse_when("36h", now=now) == now - timedelta(hours=36)
    assert parse_when("2w", now=now) == now - timedelta(weeks=2)
    assert parse_when("2026-11-02") == datetime(2026, 11, 2, tzinfo=timezone.utc)
    assert parse_when("2026-11-02T10:00+01:00") == datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
    with pytest.raises(InputError):
        parse_when("yesterday-ish")


def test_entity_audit_lists_every_command_on_the_load_in_order(known: Catalogue) -> None:
    history = entity_history(known, "load_id", "L-X")
    assert [p.token for p in history] == ["t0003", "t0030", "t0061"]
    assert history[0].differences[0].path == "state.driver" and history[0].differences[0].verdict == "open"
    assert history[0].legacy["state"]["driver"] == "Ann   " and history[0].payload == {"n": 3}
    assert len(entity_history(known, "driver_id", "D-1")) == 100
    assert entity_history(known, "load_id", "L-nope") == []


def test_pairs_show_cli_json_and_errors(known: Catalogue) -> None:
    store = store_of(known)
    shown = runner.invoke(app, ["pairs", "show", "--store", store, "--key", "load_id=L-X", "--json"])
    assert shown.exit_code == 0
    data = json.loads(shown.stdout)
    assert [p["command"] for p in data] == ["assign_load", "assign_load", "cancel_load"]
    assert data[0]["differences"][0]["quirk"]
    text = runner.invoke(app, ["pairs", "show", "--store", store, "--key", "load_id=L-X"])
    assert "3 command(s) touched load_id=L-X" in text.output
    assert runner.invoke(app, ["pairs", "show", "--store", store, "--key", "load_id=L-0-none"]).exit_code == 1
    bad = runner.invoke(app, ["pairs", "show", "--store", store, "--key", "L-X"])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output


def test_reports_package_exports_the_notebook_api() -> None:
    import reports

    assert reports.frames is frames and reports.build_report is build_report
