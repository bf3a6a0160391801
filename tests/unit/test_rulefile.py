"""Rule files: what a valid file says, how an invalid one is refused, how a folder loads, and path globs.

A refusal is for a person (STYLE.md, 5): it names the file, the line when it
can be found, the key path, and the reason, and exits with code 2.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from rules.normalise import Normaliser
from rules.paths import PathGlob, field_of, parse_path
from rules.rulefile import RuleSet, load_rules, parse_rule_file
from shadow.errors import ConfigError

SOURCE = "rules/driver-name.toml"

FULL = """\
# Legacy pads driver names to CHAR(20); the new engine trims. Retired.
[quirk]
id = "3f1c0a9e2b7d"
verdict = "retire"
owner = "dana"
note = "nobody relies on the padding"
ticket = "DISP-812"
decided_at = 2026-11-02T12:00:00Z

[[normalise]]
path = "**.driver_name"
trim = true

[[normalise]]
path = "state.zone"
casefold = true
commands = ["assign_load", "reassign_load"]

[[normalise]]
path = "state.notes"
null_equals_empty = true

[[normalise]]
path = "state.status"
value_map = { A = "assigned", C = "cancelled" }
side = "both"

[[normalise]]
path = "state.stops"
unordered = true
key = "seq"

[[normalise]]
path = "state.hazmat"
coerce = "boolean"

[[normalise]]
path = "state.weight"
tolerance = { relative = 0.001 }

[[normalise]]
path = "state.stops[*].eta"
timestamp = { tolerance_ms = 5, assume_timezone = "America/Chicago" }

[[normalise]]
path = "state.updated_at"
ignore = true

[[normalise]]
path = "state.driver.phone"
redact = true

[[noise]]
path = "state.request_id"
reason = "a fresh UUID per call"
"""


def refused(text: str, source: str = SOURCE) -> str:
    with pytest.raises(ConfigError) as info:
        parse_rule_file(text, source)
    assert info.value.exit_code == 2
    return str(info.value)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def verdict_file(quirk_id: str, verdict: str = "retire") -> str:
    return f'[quirk]\nid = "{quirk_id}"\nverdict = "{verdict}"\n'


# --- valid files ------------------------------------------------------------------------------------------------

def test_a_file_with_every_action_parses() -> None:
    rule = parse_rule_file(FULL, SOURCE)
    assert [step.actions for step in rule.normalise] == [
        ["trim"], ["casefold"], ["null_equals_empty"], ["value_map"], ["unordered"], ["coerce"], ["tolerance"],
        ["timestamp"], ["ignore"], ["redact"]]
    trim, casefold, _, value_map, unordered, coerce, tolerance, timestamp, _, _ = rule.normalise
    assert trim.path == "**.driver_name" and trim.commands == [] and trim.side == "legacy"
    assert casefold.commands == ["assign_load", "reassign_load"]
    assert value_map.value_map == {"A": "assigned", "C": "cancelled"} and value_map.side == "both"
    assert unordered.key == "seq"
    assert coerce.coerce == "boolean"
    assert tolerance.tolerance is not None and (tolerance.tolerance.absolute, tolerance.tolerance.relative) == (0, 0.001)
    assert timestamp.timestamp is not None
    assert (timestamp.timestamp.tolerance_ms, timestamp.timestamp.assume_timezone) == (5, "America/Chicago")
    assert [(n.path, n.reason, n.source) for n in rule.noise] == [("state.request_id", "a fresh UUID per call", "manual")]


def test_the_quirk_table_records_the_verdict_and_who_decided() -> None:
    quirk = parse_rule_file(FULL, SOURCE).quirk
    assert quirk is not None
    assert (quirk.id, quirk.verdict, quirk.owner, quirk.note, quirk.ticket) == (
        "3f1c0a9e2b7d", "retire", "dana", "nobody relies on the padding", "DISP-812")
    assert quirk.decided_at == datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("verdict", ["open", "reproduce", "retire", "noise"])
def test_each_verdict_is_accepted(verdict) -> None:
    quirk = parse_rule_file(verdict_file("3f1c0a9e2b7d", verdict), SOURCE).quirk
    assert quirk is not None and quirk.verdict == verdict


def test_an_empty_file_is_a_rule_file_with_nothing_in_it() -> None:
    rule = parse_rule_file("# nothing decided yet\n", SOURCE)
    assert rule.quirk is None and rule.normalise == [] and rule.noise == []


def test_a_valid_file_compiles_into_a_normaliser() -> None:
    assert len(Normaliser(parse_rule_file(FULL, SOURCE).normalise)) == 10


def test_utc_is_accepted_in_any_case() -> None:
    step = parse_rule_file('[[normalise]]\npath = "eta"\ntimestamp = { assume_timezone = "utc" }\n').normalise[0]
    assert step.timestamp is not None and step.timestamp.assume_timezone == "UTC"


# --- refusals ---------------------------------------------------------------------------------------------------

def test_a_step_with_no_action_is_refused() -> None:
    message = refused('[[normalise]]\npath = "state.zone"\n')
    assert f"{SOURCE}:1: normalise[0]: says nothing to do: give one of ignore, trim" in message


def test_the_line_of_a_refused_step_is_that_steps_table() -> None:
    message = refused('[[normalise]]\npath = "a"\ntrim = true\n\n[[normalise]]\npath = "b"\ncasefold = false\n')
    assert f"{SOURCE}:5: normalise[1]: says nothing to do" in message


def test_ignore_cannot_be_combined_with_another_action() -> None:
    message = refused('[[normalise]]\npath = "state.zone"\nignore = true\ntrim = true\ncasefold = true\n')
    assert f"{SOURCE}:1: normalise[0]: ignore = true cannot be combined with trim, casefold" in message


def test_key_without_unordered_is_refused() -> None:
    message = refused('[[normalise]]\npath = "state.stops"\ntrim = true\nkey = "seq"\n')
    assert f"{SOURCE}:1: normalise[0]: key = … only applies with unordered = true" in message


@pytest.mark.parametrize(("glob", "reason"), [
    ("a..b", "path 'a..b': a '.' with no name before it (position 2)"),
    ("a.", "path 'a.' ends with '.'"),
    (".a", "path '.a': a '.' with no name before it (position 0)"),
    ("a[x]", "path 'a[x]': cannot read '[x]'"),
    (" a", "path ' a' is empty or has surrounding spaces"),
])
def test_a_bad_glob_is_refused_with_its_position(glob, reason) -> None:
    message = refused(f'[[normalise]]\npath = "{glob}"\ntrim = true\n')
    assert f"{SOURCE}:2: normalise[0].path: {reason}" in message


def test_a_bad_noise_glob_is_refused() -> None:
    message = refused('[[noise]]\npath = "state..zone"\nreason = "x"\n')
    assert f"{SOURCE}:2: noise[0].path: path 'state..zone'" in message


def test_a_normalise_path_ending_in_double_star_is_refused_when_the_file_is_read() -> None:
    message = refused('[[normalise]]\npath = "state.**"\ntrim = true\n')
    assert "normalise[0].path" in message and "'**'" in message


def test_an_unknown_verdict_is_refused() -> None:
    message = refused('[quirk]\nid = "3f1c0a9e2b7d"\nverdict = "maybe"\n')
    assert f"{SOURCE}:3: quirk.verdict: Input should be 'open', 'reproduce', 'retire' or 'noise'" in message


def test_a_short_quirk_id_is_refused() -> None:
    assert f"{SOURCE}:2: quirk.id: String should have at least 6 characters" in refused('[quirk]\nid = "3f"\nverdict = "open"\n')


def test_an_unknown_top_level_key_is_refused() -> None:
    message = refused('colour = "red"\n')
    assert f"{SOURCE}: colour: unknown key (a rule file holds [quirk], [[normalise]] and [[noise]])" in message


def test_an_unknown_key_inside_a_step_is_refused_at_its_line() -> None:
    message = refused('[[normalise]]\npath = "state.zone"\ntrim = true\ntrimm = true\n')
    assert f"{SOURCE}:4: normalise[0].trimm: unknown key" in message


def test_an_unknown_key_in_the_quirk_table_is_refused() -> None:
    message = refused('[quirk]\nid = "3f1c0a9e2b7d"\nverdict = "retire"\nowner_name = "dana"\n')
    assert f"{SOURCE}:4: quirk.owner_name: unknown key" in message


@pytest.mark.parametrize("text", [
    '[[normalise]]\npath = "eta"\ntimestamp = { assume_timezone = "Mars/Olympus" }\n',
    '[[normalise]]\npath = "eta"\n[normalise.timestamp]\nassume_timezone = "Mars/Olympus"\n',
], ids=["inline-table", "sub-table"])
def test_an_unknown_time_zone_is_refused(text) -> None:
    message = refused(text)
    assert SOURCE in message
    assert ("normalise[0].timestamp.assume_timezone: unknown time zone 'Mars/Olympus'; "
            "use an IANA name such as 'America/Chicago'") in message


def test_a_tolerance_of_zero_is_refused() -> None:
    message = refused('[[normalise]]\npath = "state.weight"\ntolerance = { absolute = 0, relative = 0 }\n')
    assert f"{SOURCE}:3: normalise[0].tolerance: give absolute = … or relative = … (both are 0)" in message


def test_a_negative_tolerance_is_refused() -> None:
    message = refused('[[normalise]]\npath = "state.weight"\ntolerance = { absolute = -1 }\n')
    assert "normalise[0].tolerance.absolute: Input should be greater than or equal to 0" in message


@pytest.mark.parametrize(("extra", "key"), [('coerce = "decimal"', "coerce"), ('trim = true\nside = "left"', "side")])
def test_a_value_outside_its_choices_is_refused(extra, key) -> None:
    message = refused(f'[[normalise]]\npath = "a"\n{extra}\n')
    assert f"normalise[0].{key}: Input should be" in message


def test_invalid_toml_is_refused_with_its_line() -> None:
    message = refused('[[normalise]]\npath = "a"\ntrim = true\n\n[quirk\nid = "3f1c0a9e2b7d"\n')
    assert f"{SOURCE}: not valid TOML:" in message and "line 5" in message
    assert "fix the syntax at the line shown" in message


def test_every_problem_of_a_file_is_listed() -> None:
    message = refused('[quirk]\nid = "3f1c0a9e2b7d"\nverdict = "maybe"\n\n[[normalise]]\npath = "a"\n')
    assert "quirk.verdict" in message and "normalise[0]: says nothing to do" in message


def test_a_refusal_says_what_to_do() -> None:
    with pytest.raises(ConfigError) as info:
        parse_rule_file('[[normalise]]\npath = "a"\n', SOURCE)
    assert info.value.hint is not None and "shadow rules check" in info.value.hint


# --- a folder of rule files -------------------------------------------------------------------------------------

def test_files_load_in_name_order(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    second = write(folder, "20-zone.toml", '[[normalise]]\npath = "state.zone"\ncasefold = true\n')
    first = write(folder, "10-driver.toml",
                  verdict_file("3f1c0a9e2b7d") + '[[normalise]]\npath = "**.driver_name"\ntrim = true\n')
    third = write(folder, "30-noise.toml", '[[noise]]\npath = "state.request_id"\n')
    write(folder, "README.md", "not a rule file")
    rules = load_rules(folder)
    assert [f.path for f in rules.files] == [first, second, third]
    assert [s.path for s in rules.steps] == ["**.driver_name", "state.zone"]
    assert [n.path for n in rules.noise] == ["state.request_id"]
    assert rules.folder == folder


def test_decisions_map_each_quirk_to_its_verdict_and_file(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    retired = write(folder, "padding.toml", verdict_file("3f1c0a9e2b7d", "retire"))
    kept = write(folder, "zone-case.toml", verdict_file("9a8b7c6d5e4f", "reproduce"))
    write(folder, "steps-only.toml", '[[normalise]]\npath = "a"\ntrim = true\n')
    rules = load_rules(folder)
    assert {qid: (d.verdict, path) for qid, (d, path) in rules.decisions.items()} == {
        "3f1c0a9e2b7d": ("retire", retired), "9a8b7c6d5e4f": ("reproduce", kept)}
    assert rules.file_for("9a8b7c6d5e4f") == kept
    assert rules.file_for("000000000000") is None


def test_a_folder_that_does_not_exist_has_no_rules(tmp_path: Path) -> None:
    rules = load_rules(tmp_path / "missing")
    assert (rules.files, rules.steps, rules.noise, rules.decisions) == ([], [], [], {})
    assert load_rules(None).files == []


def test_a_rules_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "rules", "")
    with pytest.raises(ConfigError, match="the rules folder is a file") as info:
        load_rules(path)
    assert info.value.exit_code == 2


def test_two_verdicts_on_one_quirk_are_refused_naming_both_files(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    first = write(folder, "a-padding.toml", verdict_file("3f1c0a9e2b7d", "retire"))
    second = write(folder, "b-padding-again.toml", verdict_file("3f1c0a9e2b7d", "reproduce"))
    with pytest.raises(ConfigError) as info:
        load_rules(folder)
    assert str(second) in str(info.value) and str(first) in str(info.value)
    assert "quirk 3f1c0a9e2b7d already has a verdict" in str(info.value)
    assert info.value.exit_code == 2


def test_an_invalid_file_in_a_folder_is_refused_with_its_path(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    write(folder, "10-good.toml", '[[normalise]]\npath = "a"\ntrim = true\n')
    bad = write(folder, "20-bad.toml", '[[normalise]]\npath = "a"\n')
    with pytest.raises(ConfigError) as info:
        load_rules(folder)
    assert f"{bad}:1: normalise[0]: says nothing to do" in str(info.value)


def test_an_empty_rule_set_has_nothing() -> None:
    rules = RuleSet()
    assert (rules.steps, rules.noise, rules.decisions, rules.file_for("3f1c0a9e2b7d")) == ([], [], {}, None)


# --- path globs -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("glob", "path", "expected"), [
    ("state.zone", "state.zone", True),
    ("state.zone", "response.zone", False),
    ("state.stops[*].eta", "state.stops[2].eta", True),
    ("state.stops[*].eta", "state.stops[*].eta", True),
    ("state.stops[2].eta", "state.stops[2].eta", True),
    ("state.stops[2].eta", "state.stops[3].eta", False),
    ("state.stops[2].eta", "state.stops[*].eta", True),
    ("state.stops[*].eta", "state.stops.eta", False),
    ("*.zone", "state.zone", True),
    ("*.zone", "state.load.zone", False),
    ("*.zone", "zone", False),
    ("state.*", "state.stops[0]", False),
    ("state.stops.*", "state.stops[0]", False),
    ("**.created_at", "created_at", True),
    ("**.created_at", "state.created_at", True),
    ("**.created_at", "state.stops[3].audit.created_at", True),
    ("**.created_at", "state.created_at_utc", False),
    ("**.created_at", "state.created_at.date", False),
    ("state.**.eta", "state.eta", True),
    ("state.**.eta", "state.stops[1].eta", True),
    ("state.**.eta", "response.stops[1].eta", False),
    ("state.**[*]", "state.legs[0][1]", True),
    ('a["x.y"]', 'a["x.y"]', True),
    ('a["x.y"]', "a.x.y", False),
    ('a["x"]', "a.x", True),
    ('a["say \\"hi\\""]', 'a["say \\"hi\\""]', True),
])
def test_a_glob_matches_concrete_and_wildcarded_paths(glob, path, expected) -> None:
    assert PathGlob.compile(glob).matches(path) is expected


@pytest.mark.parametrize(("glob", "path", "expected"), [
    ("state.stops", "state.stops[2].eta", True),
    ("state.stops[*]", "state.stops[2].eta", True),
    ("state.stops", "state.stops", True),
    ("state.stop", "state.stops[2].eta", False),
    ("**.driver", "state.assignments[0].driver.name", True),
    ("state.stops[*].eta", "state.stops", False),
])
def test_a_glob_with_prefix_matches_paths_under_it(glob, path, expected) -> None:
    assert PathGlob.compile(glob).matches(path, prefix=True) is expected


def test_without_prefix_a_glob_does_not_match_paths_under_it() -> None:
    assert not PathGlob.compile("state.stops").matches("state.stops[2].eta")


def test_a_compiled_glob_keeps_its_text() -> None:
    glob = PathGlob.compile("state.stops[*].eta")
    assert glob.text == "state.stops[*].eta" and glob.segments == tuple(parse_path("state.stops[*].eta"))


@pytest.mark.parametrize(("path", "field"), [
    ("state.assignments[*].driver_name", "driver_name"),
    ("state.assignments[3].driver_name", "driver_name"),
    ("response.load.zone", "zone"),
    ("state.stops[2]", "stops"),
    ('state["x.y"]', "x.y"),
    ("status", "@status"),
    ("http_status", "@http_status"),
    ("state", "@state"),
    ("response", "@response"),
    ("state.status", "status"),
])
def test_field_of_is_the_last_key_and_marks_the_outcomes_own_fields(path, field) -> None:
    assert field_of(path) == field
