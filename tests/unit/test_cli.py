"""The CLI: a thin skin; every listing has --json; errors are one line and an exit code."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from typer.testing import CliRunner

from adapters.jsonl import JsonlPairs
from shadow.cli import app
from shadow.model import Command, Outcome, Pair, Status, Target

runner = CliRunner()


def write_pairs(path: Path, n: int = 6) -> Path:
    sink = JsonlPairs(path)
    for i in range(n):
        sink.write(Pair(
            command=Command(kind="assign_load", token=f"t{i}", zone="chi",
                            received_at=datetime(2026, 11, 2, 11, i, tzinfo=timezone.utc)),
            legacy=Outcome(target=Target.LEGACY, status=Status.OK, state={"zone": "CHI", "n": i}),
            new=Outcome(target=Target.NEW, status=Status.OK, state={"zone": "chi" if i % 2 else "CHI", "n": i}),
        ))
    sink.close()
    return path


def test_help_lists_the_command_groups() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("replay", "compare", "quirks", "demo", "config"):
        assert group in result.output


def test_compare_then_quirks_list_and_show(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    store = f"sqlite:///{tmp_path / 'c.db'}"
    first = runner.invoke(app, ["compare", str(pairs), "--store", store, "--json"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["compare", str(pairs), "--store", store, "--json"])
    assert json.loads(again.stdout)["stored"]["replaced"] == 6
    assert json.loads(again.stdout)["overall"] == {"name": "all", "pairs": 6, "matched": 3, "match_rate": 0.5}

    listed = json.loads(runner.invoke(app, ["quirks", "list", "--store", store, "--json"]).stdout)
    assert [(q["paths"], q["transition"], q["differences"], q["verdict"]) for q in listed] == \
        [(["state.zone"], "case-only", 3, "open")]
    table = runner.invoke(app, ["quirks", "list", "--store", store])
    assert listed[0]["id"] in table.output and "case-only" in table.output

    shown = runner.invoke(app, ["quirks", "show", listed[0]["id"][:5], "--store", store, "--json"])
    assert json.loads(shown.stdout)["examples"][0] == {"token": "t1", "command": "assign_load", "path": "state.zone",
                                                       "legacy": "CHI", "new": "chi"}
    text = runner.invoke(app, ["quirks", "show", listed[0]["id"], "--store", store])
    assert "case-only" in text.output and '"CHI"' in text.output


def test_a_bad_line_in_pairs_names_file_and_line(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", 2)
    with pairs.open("ab") as handle:
        handle.write(b'{"command": {"kind": "x"}, "legacy": 7}\n')
    result = runner.invoke(app, ["compare", str(pairs), "--store", f"sqlite:///{tmp_path / 'c.db'}"])
    assert result.exit_code == 2
    assert "pairs.jsonl:3" in result.output and "Traceback" not in result.output


def test_an_unfinished_last_line_is_a_file_still_being_written_not_an_error(tmp_path: Path) -> None:
    """A running proxy appends to its pairs file: compare reads the whole lines, and the next run the rest."""
    pairs = write_pairs(tmp_path / "pairs.jsonl", 3)
    whole = pairs.read_bytes()
    last = whole.rstrip(b"\n").rsplit(b"\n", 1)[1]
    pairs.write_bytes(whole[: len(whole) - len(last) // 2 - 1])  # the third pair cut in the middle
    store = f"sqlite:///{tmp_path / 'c.db'}"
    result = runner.invoke(app, ["compare", str(pairs), "--store", store, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stored"]["pairs"] == 2
    pairs.write_bytes(whole)  # the writer finished the line
    result = runner.invoke(app, ["compare", str(pairs), "--store", store, "--json"])
    assert json.loads(result.stdout)["stored"]["pairs"] == 3
    # A bad line that is finished (newline) is still an error naming the line.
    pairs.write_bytes(whole + b'{"broken": \n')
    assert runner.invoke(app, ["compare", str(pairs), "--store", store]).exit_code == 2


def test_replay_refuses_a_bad_trace_before_sending_anything(tmp_path: Path, demo_config) -> None:
    config = tmp_path / "shadow.toml"
    from shadow.demo.run import demo_config_text

    config.write_text(demo_config_text(1, 2))  # ports nobody listens on: nothing may be sent
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"kind": "assign_load"}\n{"kind": 12}\n')
    result = runner.invoke(app, ["replay", str(trace), "-c", str(config)])
    assert result.exit_code == 2 and "trace.jsonl:2" in result.output
    assert not (tmp_path / "pairs.jsonl").exists()


def test_an_error_names_a_long_path_whole_on_one_line(tmp_path: Path, demo_config) -> None:
    """Messages are not wrapped by the CLI: a path longer than the terminal stays whole, to copy or grep. (Rich
    wrapped them at 80 columns, mid-path; with pytest-xdist's longer temporary folders three tests failed.)"""
    from shadow.demo.run import demo_config_text

    folder = tmp_path / ("a-folder-with-a-long-name-" * 4)
    folder.mkdir()
    config = folder / "shadow.toml"
    config.write_text(demo_config_text(1, 2))
    trace = folder / "trace.jsonl"
    trace.write_text('{"kind": "assign_load"}\n{"kind": 12}\n')
    result = runner.invoke(app, ["replay", str(trace), "-c", str(config)])
    assert len(f"error: {trace}:2") > 120
    assert result.exit_code == 2 and f"error: {trace}:2: not a valid Command" in result.output.splitlines()[0]


def test_unknown_quirk_and_bad_verdict_are_clear_errors(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'c.db'}"
    missing = runner.invoke(app, ["quirks", "show", "abc", "--store", store])
    assert missing.exit_code == 4 and "no quirk with id 'abc'" in missing.output
    bad = runner.invoke(app, ["quirks", "list", "--store", store, "--verdict", "maybe"])
    assert bad.exit_code == 1 and "open, reproduce, retire, noise" in bad.output


def test_empty_catalogue_lists_nothing_as_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["quirks", "list", "--store", f"sqlite:///{tmp_path / 'c.db'}", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []


def test_demo_trace_is_identical_for_a_seed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        assert runner.invoke(app, ["demo", "trace", "--commands", "300", "--seed", "11", "-o", str(path)]).exit_code == 0
    assert a.read_bytes() == b.read_bytes() and len(a.read_bytes().splitlines()) == 300


def test_triage_rules_test_and_recompute_from_the_command_line(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    store, rules = f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "rules"
    assert runner.invoke(app, ["compare", str(pairs), "--store", store, "--rules", str(rules)]).exit_code == 0
    quirk = json.loads(runner.invoke(app, ["quirks", "list", "--store", store, "--json"]).stdout)[0]["id"]

    candidate = tmp_path / "zones.toml"
    candidate.write_text('[[normalise]]\npath = "state.zone"\ncasefold = true\n')
    tested = runner.invoke(app, ["rules", "test", str(candidate), "--store", store, "--rules", str(rules), "--json"])
    assert tested.exit_code == 0, tested.output
    assert json.loads(tested.stdout)["closed"] == [quirk] and json.loads(tested.stdout)["removed"] == 3

    triaged = runner.invoke(app, ["quirks", "triage", quirk, "--verdict", "retire", "--owner", "dana",
                                  "--note", "zones are case-insensitive", "--store", store, "--rules", str(rules)])
    assert triaged.exit_code == 0 and f"quirk-{quirk}.toml" in triaged.output
    listed = json.loads(runner.invoke(app, ["quirks", "list", "--store", store, "--verdict", "retire", "--json"]).stdout)
    assert [(q["id"], q["owner"], q["note"]) for q in listed] == [(quirk, "dana", "zones are case-insensitive")]
    checked = runner.invoke(app, ["rules", "check", "--rules", str(rules), "--json"])
    assert json.loads(checked.stdout)["verdicts"] == 1

    candidate.rename(rules / "zones.toml")
    again = runner.invoke(app, ["compare", "--recompute", "--store", store, "--rules", str(rules), "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["overall"]["matched"] == 6
    assert json.loads(runner.invoke(app, ["quirks", "list", "--store", store, "--json"]).stdout) == []


def test_list_filters_and_bad_filters(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    store = f"sqlite:///{tmp_path / 'c.db'}"
    runner.invoke(app, ["compare", str(pairs), "--store", store, "--rules", str(tmp_path / "rules")])
    for args, expected in ((["--zone", "chi"], 1), (["--zone", "lax"], 0), (["--command", "cancel_load"], 0),
                           (["--load", "nope"], 0), (["--sort", "last_seen"], 1)):
        result = runner.invoke(app, ["quirks", "list", "--store", store, "--json", *args])
        assert len(json.loads(result.stdout)) == expected, args
    assert runner.invoke(app, ["quirks", "list", "--store", store, "--sort", "size"]).exit_code == 1
    assert runner.invoke(app, ["compare", "--store", store]).exit_code == 1  # nothing to compare
    bad = tmp_path / "bad.toml"
    bad.write_text("[[normalise]]\npath = 'a'\n")
    refused = runner.invoke(app, ["rules", "test", str(bad), "--store", store])
    assert refused.exit_code == 2 and "says nothing to do" in refused.output


def test_audit_list_and_verify(tmp_path: Path) -> None:
    import sqlalchemy as sa

    pairs = write_pairs(tmp_path / "pairs.jsonl")
    store, rules = f"sqlite:///{tmp_path / 'c.db'}", str(tmp_path / "rules")
    runner.invoke(app, ["compare", str(pairs), "--store", store, "--rules", rules])
    quirk = json.loads(runner.invoke(app, ["quirks", "list", "--store", store, "--json"]).stdout)[0]["id"]
    runner.invoke(app, ["quirks", "triage", quirk, "--verdict", "retire", "--owner", "dana", "--store", store,
                        "--rules", rules])
    listed = json.loads(runner.invoke(app, ["audit", "list", "--store", store, "--json"]).stdout)
    assert [(e["actor"], e["action"], e["subject"]) for e in listed] == [("dana", "verdict", f"quirk:{quirk}")]
    shown = json.loads(runner.invoke(app, ["quirks", "show", quirk, "--store", store, "--json"]).stdout)
    assert shown["history"][0]["detail"]["to"] == "retire"
    assert runner.invoke(app, ["audit", "verify", "--store", store]).exit_code == 0
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory'"))
    engine.dispose()
    tampered = runner.invoke(app, ["audit", "verify", "--store", store])
    assert tampered.exit_code == 1 and "entry 1 does not hold" in tampered.output


def test_the_proxy_banner_names_where_its_pairs_go_for_each_sink() -> None:
    from shadow.cli.traffic import _pairs_destination
    from shadow.config import parse_config

    base = ('[targets.legacy]\nurl = "http://127.0.0.1:1"\n[targets.new]\nurl = "http://127.0.0.1:2"\n'
            '[store]\nurl = "postgresql+psycopg://ops:s3cret@db/shadow"\n')
    assert _pairs_destination(parse_config(base)) == "proxy-pairs.jsonl"
    assert _pairs_destination(parse_config(base + '[proxy]\nsink = "catalogue"\n')) == \
        "the catalogue at postgresql+psycopg://ops:***@db/shadow"
    assert _pairs_destination(parse_config(base + '[proxy]\nsink = "kafka"\n[kafka]\nbootstrap = "k:9092"\n'
                                                   'pairs = "dispatch.pairs"\n')) == "Kafka topic dispatch.pairs on k:9092"
