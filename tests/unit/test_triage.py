"""Triage and rule changes: verdicts become rule files (comments kept), rules are tested before commit,
stored pairs are re-compared after a change, noise is proposed in a reviewable file."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from rules.catalogue import Catalogue
from rules.noise import PATTERN_FILE, looks_random
from rules.rulefile import load_rules
from rules.triage import test_rule_file as run_rules_test
from rules.triage import triage
from shadow.errors import ConfigError, ShadowError
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into, recompute

BASE = datetime(2026, 11, 2, 11, 0, tzinfo=timezone.utc)


def pair(i: int, legacy: dict, new: dict, *, zone: str = "chi", kind: str = "assign_load") -> Pair:
    return Pair(
        command=Command(kind=kind, token=f"t{i}", zone=zone, keys={"load_id": f"L-{i // 2}"},
                        received_at=BASE + timedelta(minutes=i)),
        legacy=Outcome(target=Target.LEGACY, status=Status.OK, state=legacy),
        new=Outcome(target=Target.NEW, status=Status.OK, state=new),
    )


def sample(n: int = 12) -> list[Pair]:
    return [pair(i, {"name": "Ann   ", "zone": "CHI", "id": 1000 + i, "price": 1.13},
                 {"name": "Ann", "zone": "chi", "id": f"1c4e9a52-7f0b-4c8e-9d3a-{i:012d}", "price": 1.12},
                 zone="chi" if i % 3 else "nyc") for i in range(n)]


def quirk_by_field(catalogue: Catalogue, field: str):
    return next(q for q in catalogue.quirks() if q.field == field)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return tmp_path / "rules"


def test_triage_writes_the_rule_file_and_the_catalogue_row(catalogue, rules) -> None:
    compare_into(sample(), catalogue, rules_folder=rules, detect_noise=False)
    quirk = quirk_by_field(catalogue, "name")
    path = triage(catalogue, rules, quirk.id[:7], "retire", owner="dana", note="padding is legacy", ticket="DISP-812")
    assert path == rules / f"quirk-{quirk.id}.toml"
    decided = load_rules(rules).decisions[quirk.id][0]
    assert (decided.verdict, decided.owner, decided.note, decided.ticket) == ("retire", "dana", "padding is legacy",
                                                                              "DISP-812")
    row = catalogue.quirk(quirk.id)
    assert (row.verdict, row.owner, row.verdict_source) == ("retire", "dana", path.name)
    assert catalogue.count_quirks(verdict="open") == 3


def test_triage_again_keeps_comments_and_hand_written_rules(catalogue, rules) -> None:
    compare_into(sample(), catalogue, rules_folder=rules, detect_noise=False)
    quirk = quirk_by_field(catalogue, "name")
    path = triage(catalogue, rules, quirk.id, "reproduce", owner="dana")
    path.write_text(path.read_text() + '\n# trimmed by the new engine since v2\n[[normalise]]\npath = "state.name"\n'
                    'trim = true  # keep\n')
    triage(catalogue, rules, quirk.id, "retire", owner="lee", note="agreed in review")
    text = path.read_text()
    assert "# trimmed by the new engine since v2" in text and "trim = true  # keep" in text
    assert 'verdict = "retire"' in text and 'owner = "lee"' in text


def test_triage_refuses_unknown_quirks_and_missing_owner(catalogue, rules) -> None:
    compare_into(sample(), catalogue, rules_folder=rules, detect_noise=False)
    with pytest.raises(ShadowError, match="no quirk with id"):
        triage(catalogue, rules, "ffffffffffff", "retire", owner="dana")
    with pytest.raises(ShadowError, match="owner"):
        triage(catalogue, rules, quirk_by_field(catalogue, "name").id, "retire", owner=" ")


def test_rules_test_says_what_a_rule_would_match_and_close_and_writes_nothing(catalogue, rules, tmp_path) -> None:
    compare_into(sample(), catalogue, rules_folder=rules, detect_noise=False)
    before = [(q.id, q.differences) for q in catalogue.quirks()]
    candidate = tmp_path / "trim-names.toml"
    candidate.write_text('[[normalise]]\npath = "state.name"\ntrim = true\n')
    report = run_rules_test(catalogue, rules, candidate)
    name = quirk_by_field(catalogue, "name").id
    assert report.pairs == 12 and report.matched == {name: 12} and report.closed == [name]
    assert report.differences_before - report.differences_after == 12
    assert [(q.id, q.differences) for q in catalogue.quirks()] == before
    assert not rules.exists() or not list(rules.iterdir())


def test_rules_test_refuses_a_broken_candidate(catalogue, rules, tmp_path) -> None:
    candidate = tmp_path / "broken.toml"
    candidate.write_text('[[normalise]]\npath = "state..name"\ntrim = true\n')
    with pytest.raises(ConfigError, match=r"broken.toml:2: normalise\[0\].path"):
        run_rules_test(catalogue, rules, candidate)


def test_recompute_applies_a_new_rule_to_stored_pairs(catalogue, rules) -> None:
    compare_into(sample(), catalogue, rules_folder=rules, detect_noise=False)
    rules.mkdir()
    (rules / "zone.toml").write_text('# zones compare case-insensitively\n[[normalise]]\npath = "*.zone"\ncasefold = true\n')
    run = recompute(catalogue, rules_folder=rules, detect_noise=False)
    assert run.stored.pairs == 12 and run.stored.replaced == 12
    assert "zone" not in {q.field for q in catalogue.quirks()}
    assert quirk_by_field(catalogue, "name").differences == 12


def test_redacted_fields_never_reach_the_catalogue(catalogue, rules) -> None:
    rules.mkdir()
    (rules / "privacy.toml").write_text('[[normalise]]\npath = "**.phone"\nredact = true\n')
    pairs = [pair(i, {"driver": {"phone": "+1 312 555 0101"}, "n": 1}, {"driver": {"phone": "+1 312 555 0199"}, "n": 1})
             for i in range(3)]
    compare_into(pairs, catalogue, rules_folder=rules, detect_noise=False)
    assert quirk_by_field(catalogue, "phone").differences == 3
    with catalogue.engine.connect() as conn:
        rows = [row for table in ("differences", "quirks") for row in conn.execute(sa.text(f"select * from {table}"))]
    dump = "\n".join(map(str, rows))
    stored = [p.legacy.state["driver"]["phone"] for p in catalogue.stored_pairs()]
    assert "555" not in dump and all(value.startswith("redacted:") for value in stored)


def test_random_looking_values_are_proposed_as_noise_in_a_reviewable_file(catalogue, rules) -> None:
    run = compare_into(sample(), catalogue, rules_folder=rules)
    proposal = rules / PATTERN_FILE
    assert run.noise_file == proposal and "review them like code" in proposal.read_text().lower()
    assert quirk_by_field(catalogue, "id").verdict == "noise"
    assert {q.field for q in catalogue.quirks(verdict="open")} == {"name", "zone", "price"}
    # A reviewer deletes the entry: the quirk is open again on the next compare, and is not proposed twice.
    text = proposal.read_text()
    proposal.write_text(text[: text.index("[[noise]]")])
    compare_into([], catalogue, rules_folder=rules, detect_noise=False)
    assert quirk_by_field(catalogue, "id").verdict == "open"


@pytest.mark.parametrize("samples,expected", [
    ([(i, f"0b6a9c1e-3d2f-4a5b-8c7d-{i:012d}") for i in range(20)], "UUIDs"),
    ([(i, 10_000 + i) for i in range(20)], "sequence ids"),
    ([(f"2026-11-25T12:00:{i:02d}.{(i * 37) % 1000:03d}Z", f"2026-11-25T12:00:{i:02d}.{(i * 91 + 5) % 1000:03d}Z")
      for i in range(20)], "wall-clock"),
])
def test_noise_patterns(samples, expected) -> None:
    assert expected in (looks_random(samples) or "")


@pytest.mark.parametrize("samples", [
    [("CHI", "chi")] * 20,                                                        # case: a behaviour
    [(f"2026-11-02T15:00:0{i % 10}.{t}Z", f"2026-11-02T15:00:0{i % 10}.{t[:2]}{int(t[2]) + 1}Z")
     for i, t in enumerate(["003", "007", "010", "013", "017", "020"] * 4)],       # DATETIME ticks: rounding
    [("2026-11-02T08:00:00", "2026-11-02T14:00:00Z")] * 20,                       # local time vs UTC
    [("D-NYC-04", "D-NYC-02")] * 20,                                              # a different driver
])
def test_behaviours_are_not_mistaken_for_noise(samples) -> None:
    assert looks_random(samples) is None


def test_which_quirks_hit_a_load_a_command_a_zone(catalogue, rules) -> None:
    compare_into(sample() + [pair(99, {"x": 1}, {"x": 2}, zone="lax", kind="cancel_load")], catalogue,
                 rules_folder=rules, detect_noise=False)
    assert {q.field for q in catalogue.quirks(entity="L-49")} == {"x"}
    assert {q.field for q in catalogue.quirks(command="cancel_load")} == {"x"}
    assert {q.field for q in catalogue.quirks(zone="nyc")} == {"name", "zone", "id", "price"}
    assert catalogue.quirk(quirk_by_field(catalogue, "name").id).zones == {"chi": 8, "nyc": 4}
