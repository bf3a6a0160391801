"""Cutover gates: each prints its figure and threshold; missing or stale data fails, never passes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cutover.gates import evaluate_gates, shadow_side
from rules.catalogue import Catalogue
from rules.triage import triage
from shadow.cli import app
from shadow.config import Config, parse_config
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into

NOW = datetime.now(timezone.utc).replace(microsecond=0)
# Pairs land in the last whole hour before NOW (window gates read whole hours) and stay fresh (< 2 h).
START = NOW.replace(minute=0, second=0) - timedelta(minutes=30)
runner = CliRunner()

CONFIG = """
[targets.legacy]
url = "http://127.0.0.1:9"
[targets.new]
url = "http://127.0.0.1:9"
[[routes]]
match = "POST /loads/{load_id}/assign"
command = "assign_load"
keys = ["load_id"]
[routing]
default = "shadow"
zones = { nyc = "reverse" }
[store]
url = "sqlite:///{db}"
[cutover.gates]
min_pairs = 100
last_pairs = 500
match_rate = 99
max_error_rate = 1
latency_factor = 2
window_hours = 6
stale_after_hours = 2
"""


def arrivals(n: int, *, zone: str = "chi", start: datetime | None = None, padded: int = 0, errors: int = 0,
             new_ms: float = 12.0, prefix: str = "t") -> list[Pair]:
    start = start or START
    out = []
    for i in range(n):
        legacy = {"driver": "Ann   " if i < padded else "Ann"}
        out.append(Pair(
            command=Command(kind="assign_load", token=f"{prefix}{zone}{i}", zone=zone, keys={"load_id": f"L-{i}"},
                            received_at=start + timedelta(seconds=i)),
            legacy=Outcome(target=Target.LEGACY, status=Status.OK, state=legacy, latency_ms=10.0),
            new=Outcome(target=Target.NEW, status=Status.ERROR if i < errors else Status.OK,
                        state={"driver": "Ann"}, latency_ms=new_ms)))
    return out


@pytest.fixture
def config(tmp_path: Path, catalogue: Catalogue) -> Config:
    db = catalogue.engine.url.database
    text = CONFIG.replace("{db}", db)
    (tmp_path / "shadow.toml").write_text(text)
    return parse_config(text, source=str(tmp_path / "shadow.toml"))


def gates(catalogue: Catalogue, config: Config, zone: str = "chi", **kw) -> dict[str, bool]:
    return {f"{g.gate}/{g.command or '*'}": g.passed for g in evaluate_gates(catalogue, config, zone, now=NOW, **kw)}


def test_a_clean_zone_with_enough_fresh_pairs_passes_every_gate(catalogue: Catalogue, config: Config) -> None:
    compare_into(arrivals(300), catalogue)
    found = evaluate_gates(catalogue, config, "chi", now=NOW)
    assert all(g.passed for g in found), [g for g in found if not g.passed]
    assert {g.gate for g in found} == {"fresh data", "sample size", "match rate", "no open or reproduce quirk",
                                       "new error rate", "new p95 latency"}
    rate = next(g for g in found if g.gate == "match rate")
    assert rate.figure == "100.000%" and rate.threshold == ">= 99 % over the last 500 pairs"


def test_an_open_quirk_fails_until_it_is_decided(catalogue: Catalogue, config: Config, tmp_path: Path) -> None:
    compare_into(arrivals(300, padded=30), catalogue)
    before = gates(catalogue, config)
    assert not before["no open or reproduce quirk/*"] and not before["match rate/assign_load"]
    quirk = catalogue.quirks()[0]
    triage(catalogue, tmp_path / "rules", quirk.id, "retire", owner="po")
    assert all(gates(catalogue, config).values())
    triage(catalogue, tmp_path / "rules", quirk.id, "reproduce", owner="po")
    detail = next(g for g in evaluate_gates(catalogue, config, "chi", now=NOW) if g.gate.startswith("no open"))
    assert not detail.passed and quirk.id in detail.detail and "reproduce" in detail.detail


def test_a_zone_with_no_data_fails_every_gate(catalogue: Catalogue, config: Config) -> None:
    compare_into(arrivals(300), catalogue)
    found = evaluate_gates(catalogue, config, "den", now=NOW)
    assert found and not any(g.passed for g in found)


def test_stale_data_fails_the_match_rate_gates(catalogue: Catalogue, config: Config) -> None:
    compare_into(arrivals(300, start=NOW - timedelta(hours=3)), catalogue)  # older than stale_after_hours
    found = gates(catalogue, config)
    assert not found["fresh data/assign_load"] and not found["match rate/assign_load"]
    assert found["sample size/assign_load"]


def test_too_few_pairs_fail_the_sample_size(catalogue: Catalogue, config: Config) -> None:
    compare_into(arrivals(40), catalogue)
    found = gates(catalogue, config)
    assert not found["sample size/assign_load"] and found["match rate/assign_load"]


def test_shadow_errors_and_slow_shadow_fail_their_gates(catalogue: Catalogue, config: Config) -> None:
    compare_into(arrivals(300, errors=6, new_ms=40.0), catalogue)
    found = evaluate_gates(catalogue, config, "chi", now=NOW)
    by_gate = {g.gate: g for g in found if g.command is None}
    assert not by_gate["new error rate"].passed and by_gate["new error rate"].figure.startswith("2.000% (6 of 300)")
    assert not by_gate["new p95 latency"].passed and "vs legacy" in by_gate["new p95 latency"].figure


def test_in_reverse_the_shadow_is_legacy(catalogue: Catalogue, config: Config) -> None:
    assert shadow_side(config, "nyc") == "legacy" and shadow_side(config, "chi") == "new"
    compare_into(arrivals(300, zone="nyc"), catalogue)
    names = {g.gate for g in evaluate_gates(catalogue, config, "nyc", now=NOW)}
    assert {"legacy error rate", "legacy p95 latency"} <= names


def test_cutover_check_cli_exit_code_and_json(catalogue: Catalogue, config: Config, tmp_path: Path) -> None:
    compare_into(arrivals(300), catalogue)
    toml = str(tmp_path / "shadow.toml")
    ok = runner.invoke(app, ["cutover", "check", "--config", toml, "--zone", "chi"])
    assert ok.exit_code == 0, ok.output
    assert "all" in ok.output and "gates pass" in ok.output
    bad = runner.invoke(app, ["cutover", "check", "--config", toml, "--zone", "den", "--json"])
    assert bad.exit_code == 1 and '"passed": false' in bad.stdout
