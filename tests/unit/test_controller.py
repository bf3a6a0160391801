"""The cutover controller: plan (diff, gates, id), execute (refusals, force, the edit), auto-revert, rollback, audit."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cutover import registry
from cutover.controller import Controller, actor_of
from cutover.flip import flip_text, hold_text
from cutover.routing import mode_for
from rules.catalogue import Catalogue
from shadow import audit
from shadow.cli import app
from shadow.config import load_config
from shadow.errors import ShadowError
from shadow.pipeline import compare_into
from tests.unit.test_gates import CONFIG, NOW, arrivals

TOKEN = "dana:s3cret-token-value"
runner = CliRunner()


@pytest.fixture
def path(tmp_path: Path, catalogue: Catalogue) -> Path:
    text = "# the migration's config: comments stay\n" + CONFIG.replace("{db}", catalogue.engine.url.database)
    (tmp_path / "shadow.toml").write_text(text)
    return tmp_path / "shadow.toml"


def controller(path: Path, catalogue: Catalogue, token: str | None = TOKEN) -> Controller:
    return Controller(path, catalogue, actor=actor_of(token, None), token=token, now=NOW)


def test_a_plan_shows_the_few_lines_that_change_and_its_id_is_stable(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300), catalogue)
    plan = controller(path, catalogue).plan("chi", "reverse")
    assert plan.from_mode == "shadow" and plan.to_mode == "reverse" and plan.gates_pass
    added = [line for line in plan.diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert added == ["+version = 1", '+zones = { nyc = "reverse", chi = "reverse"}']
    assert controller(path, catalogue).plan("chi", "reverse").id == plan.id
    assert audit.entries(catalogue.engine, action="cutover.plan")[0].detail["plan"] == plan.id
    with pytest.raises(ShadowError, match="already runs shadow"):
        controller(path, catalogue).plan("chi", "shadow")


def test_execute_flips_the_file_keeping_comments_and_records_it(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300), catalogue)
    plan = controller(path, catalogue).plan("chi", "reverse")
    result = controller(path, catalogue).execute(plan.id, wait_s=0.5)
    assert not result.reverted and result.version.startswith("2-") and result.proxies == {}  # hold, then flip
    text = path.read_text()
    assert text.startswith("# the migration's config: comments stay") and 'chi = "reverse"' in text
    assert load_config(path).routing.version == 2 and load_config(path).routing.hold == []
    flip = audit.entries(catalogue.engine, action="cutover.flip")[0]
    assert flip.actor == "dana" and flip.subject == "zone:chi" and flip.detail["diff"] == plan.diff
    assert all(TOKEN not in repr(e.to_dict()) and "s3cret" not in repr(e.to_dict())
               for e in audit.entries(catalogue.engine))
    with pytest.raises(ShadowError, match="executed already"):
        controller(path, catalogue).execute(plan.id)


def test_execute_refuses_without_the_token(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300), catalogue)
    plan = controller(path, catalogue).plan("chi", "reverse")
    with pytest.raises(ShadowError, match="needs the admin token"):
        controller(path, catalogue, token=None).execute(plan.id)
    assert 'chi = "reverse"' not in path.read_text()


def test_failing_gates_refuse_unless_forced_with_a_reason(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300, padded=30), catalogue)
    plan = controller(path, catalogue).plan("chi", "reverse")
    assert not plan.gates_pass
    with pytest.raises(ShadowError, match="gate\\(s\\) fail"):
        controller(path, catalogue).execute(plan.id)
    with pytest.raises(ShadowError, match="--reason"):
        controller(path, catalogue).execute(plan.id, force=True)
    result = controller(path, catalogue).execute(plan.id, force=True, reason="padding is cosmetic", wait_s=0.5)
    assert result.to_mode == "reverse"
    flip = audit.entries(catalogue.engine, action="cutover.flip")[0]
    assert flip.detail["forced"] is True and flip.detail["reason"] == "padding is cosmetic"
    assert [e.detail["why"] for e in audit.entries(catalogue.engine, action="cutover.refused")] == ["gates fail"]


def test_a_plan_is_refused_when_the_config_changed_since(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300), catalogue)
    plan = controller(path, catalogue).plan("chi", "reverse")
    path.write_text(path.read_text().replace("match_rate = 99", "match_rate = 98"))
    with pytest.raises(ShadowError, match="changed since") as refused:
        controller(path, catalogue).execute(plan.id)
    assert "+match_rate = 98" in str(refused.value)
    with pytest.raises(ShadowError, match="refused already"):
        controller(path, catalogue).execute(plan.id)


def test_a_plan_is_refused_when_gate_figures_moved(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300), catalogue)
    plan = controller(path, catalogue).plan("chi", "reverse")
    compare_into(arrivals(20, padded=20, prefix="late"), catalogue)
    with pytest.raises(ShadowError, match="gate match rate \\(assign_load\\): pass 100.000% → fail"):
        controller(path, catalogue).execute(plan.id)


def test_a_proxy_that_does_not_take_the_version_makes_the_flip_revert(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300), catalogue)
    plan = controller(path, catalogue).plan("chi", "reverse")
    registry.register(catalogue.engine, "stuck", "127.0.0.1:9", "0-old")  # live (just beat), never answers
    result = controller(path, catalogue).execute(plan.id, wait_s=0.3)
    assert result.reverted and "stuck" in result.note
    config = load_config(path)
    assert config.routing.version == 2 and mode_for(config.routing, "chi") == "shadow" and config.routing.hold == []
    assert audit.entries(catalogue.engine, action="cutover.revert")[0].detail["lagging"] == ["stuck"]


def test_rollback_restores_the_mode_before_the_last_flip(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300), catalogue)
    with pytest.raises(ShadowError, match="no executed flip"):
        controller(path, catalogue).rollback("chi")
    plan = controller(path, catalogue).plan("chi", "new", command="assign_load")
    controller(path, catalogue).execute(plan.id, wait_s=0.3)
    assert load_config(path).routing.commands["assign_load"].zones["chi"] == "new"
    back = controller(path, catalogue).rollback("chi", command="assign_load", wait_s=0.3)
    assert (back.from_mode, back.to_mode) == ("new", "shadow")
    config = load_config(path)
    assert config.routing.version == 4 and config.routing.commands["assign_load"].zones["chi"] == "shadow"
    status = controller(path, catalogue).status()
    assert status.modes["chi"]["assign_load"] == "shadow" and status.modes["nyc"]["assign_load"] == "reverse"


def test_the_cli_plans_executes_and_shows_status(path: Path, catalogue: Catalogue, monkeypatch) -> None:
    compare_into(arrivals(300), catalogue)
    quirk_free = runner.invoke(app, ["cutover", "plan", "--config", str(path), "--zone", "chi", "--to", "reverse"])
    assert quirk_free.exit_code == 0, quirk_free.output
    plan_id = quirk_free.output.split("cutover execute ")[1].split()[0]
    refused = runner.invoke(app, ["cutover", "execute", plan_id, "--config", str(path)])
    assert refused.exit_code == 1 and "admin token" in refused.output
    monkeypatch.setenv("SHADOW_ADMIN_TOKEN", TOKEN)
    done = runner.invoke(app, ["cutover", "execute", plan_id, "--config", str(path), "--wait", "0.3"])
    assert done.exit_code == 0 and "shadow → reverse" in done.output and TOKEN not in done.output
    status = runner.invoke(app, ["cutover", "status", "--config", str(path)])
    assert status.exit_code == 0 and "reverse" in status.output


def test_flip_text_matches_zones_whatever_their_case() -> None:
    text = '[targets.legacy]\nurl = "http://a"\n[targets.new]\nurl = "http://b"\n[routing]\nzones = { CHI = "shadow" }\n'
    flip = flip_text(text, "chi", "reverse")
    assert 'CHI = "reverse"' in flip.new_text and "chi =" not in flip.new_text


def test_a_hold_marks_the_zone_and_the_flip_releases_it() -> None:
    text = '[targets.legacy]\nurl = "http://a"\n[targets.new]\nurl = "http://b"\n'
    held = hold_text(text, "chi", hold=True)
    assert 'hold = ["chi"]' in held and "version = 1" in held
    assert hold_text(held, "CHI", hold=True) == held
    flipped = flip_text(held, "chi", "reverse", release=True).new_text
    assert "hold" not in flipped and "version = 2" in flipped and 'chi = "reverse"' in flipped


def test_traffic_after_the_plan_does_not_stale_it_but_a_late_past_pair_does(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300), catalogue)
    plan = controller(path, catalogue).plan("chi", "reverse")
    # Pairs received after the plan's instant: the pinned gates ignore them; the window gates' figures may move.
    compare_into(arrivals(50, start=NOW + timedelta(seconds=1), prefix="after", new_ms=14.0), catalogue)
    result = Controller(path, catalogue, actor="dana", token=TOKEN, now=NOW + timedelta(minutes=5)).execute(
        plan.id, wait_s=0.3)
    assert result.to_mode == "reverse"


def test_a_plan_older_than_its_validity_is_refused(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300), catalogue)
    plan = controller(path, catalogue).plan("chi", "reverse")
    later = Controller(path, catalogue, actor="dana", token=TOKEN, now=NOW + timedelta(minutes=31))
    with pytest.raises(ShadowError, match="min old"):
        later.execute(plan.id)
