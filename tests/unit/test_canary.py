"""Canary plans: zones moved step by step, soaked on an SLA, rolled back and halted on a breach, resumed after a
restart. A fake clock stands in for time (it never sleeps) and generates the pairs the proxies would record."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import shadow.cli.canary  # noqa: F401  (registers `cutover run` and `cutover canary-status`)
from cutover import registry
from cutover.canary import CanaryEvent, CanaryPlan, CanaryRun, load_plan, parse_plan, progress_of
from cutover.controller import Controller, actor_of
from cutover.routing import mode_for
from rules.catalogue import Catalogue
from rules.schema import cutover_plans
from shadow import audit
from shadow.cli import app
from shadow.config import load_config
from shadow.errors import ConfigError, ShadowError
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into
from tests.unit.test_gates import CONFIG, arrivals

TOKEN = "dana:s3cret-token-value"
# Soaks run inside one hour, so the gates' hour-resolution windows see the same pairs wherever the hour is.
T0 = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(minutes=1)
ZONES = ["den", "lax", "chi"]
runner = CliRunner()

PLAN = """
zones = ["den", "lax", "chi"]
steps = ["reverse", "new"]
soak_seconds = 60

[sla]
max_error_rate = 1.0
max_p95_ms = 100
min_match_rate = 99.0
min_pairs = 50
check_seconds = 10
"""


class Crash(Exception):
    """The controller process dies here."""


class FakeClock:
    """Time that moves only when slept; each sleep first lets `traffic` record the pairs of that interval."""

    def __init__(self, start: datetime, traffic: Callable[[datetime, float], None] | None = None) -> None:
        self.t = start
        self.traffic = traffic
        self.slept = 0.0
        self.crash_after: float | None = None

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        if self.crash_after is not None and self.slept + seconds > self.crash_after:
            raise Crash()
        if self.traffic is not None:
            self.traffic(self.t, seconds)
        self.t += timedelta(seconds=seconds)
        self.slept += seconds


class Traffic:
    """What the proxies record: per zone, at `rate` commands a second, a pair in the zone's mode (none in `new`,
    nothing is mirrored there). `behaviour[(zone, mode)]` makes the new engine slow, failing or different."""

    def __init__(self, path: Path, catalogue: Catalogue, *, rate: float = 2.0, zones: list[str] | None = None,
                 lag: float = 0.0) -> None:
        self.path, self.catalogue, self.rate, self.lag = path, catalogue, rate, lag
        self.zones = ZONES if zones is None else zones
        self.behaviour: dict[tuple[str, str], dict[str, Any]] = {}
        self.count = 0
        self.late: list[tuple[datetime, Pair]] = []  # pairs recorded, not stored yet (`lag` seconds after)

    def __call__(self, start: datetime, seconds: float) -> None:
        routing = load_config(self.path).routing
        pairs = []
        for zone in self.zones:
            mode = mode_for(routing, zone, "assign_load")
            if mode not in ("shadow", "reverse"):
                continue
            how = self.behaviour.get((zone, mode), {})
            for i in range(int(seconds * self.rate)):
                self.count += 1
                fails = how.get("new_errors", 0.0) and self.count % int(1 / how["new_errors"]) == 0
                pairs.append(Pair(
                    command=Command(kind="assign_load", token=f"soak-{self.count}", zone=zone,
                                    keys={"load_id": f"S-{self.count}"},
                                    received_at=start + timedelta(seconds=i / self.rate)),
                    legacy=Outcome(target=Target.LEGACY, status=Status.OK, state={"driver": "Ann"},
                                   latency_ms=how.get("legacy_ms", 10.0)),
                    new=Outcome(target=Target.NEW, status=Status.ERROR if fails else Status.OK,
                                state={"driver": how.get("driver", "Ann")}, latency_ms=how.get("new_ms", 12.0)),
                    primary=Target.NEW if mode == "reverse" else Target.LEGACY))
        self.late += [(p.command.received_at + timedelta(seconds=self.lag), p) for p in pairs]
        due = [p for at, p in self.late if at <= start + timedelta(seconds=seconds)]
        self.late = [(at, p) for at, p in self.late if at > start + timedelta(seconds=seconds)]
        if due:
            compare_into(due, self.catalogue)


@pytest.fixture
def path(tmp_path: Path, catalogue: Catalogue) -> Path:
    (tmp_path / "shadow.toml").write_text(CONFIG.replace("{db}", catalogue.engine.url.database))
    return tmp_path / "shadow.toml"


@pytest.fixture
def ready(catalogue: Catalogue) -> None:
    """Every zone has enough clean, fresh pairs for its gates."""
    for zone in ZONES:
        compare_into(arrivals(300, zone=zone, start=T0 - timedelta(minutes=50)), catalogue)


def controller(path: Path, catalogue: Catalogue, token: str | None = TOKEN) -> Controller:
    return Controller(path, catalogue, actor=actor_of(token, None), token=token, now=T0)


def canary(path: Path, catalogue: Catalogue, clock: FakeClock, plan: str = PLAN, *, owner: str = "c1",
           events: list[CanaryEvent] | None = None, token: str | None = TOKEN) -> CanaryRun:
    return CanaryRun(parse_plan(plan, source="plan.toml"), controller(path, catalogue, token), clock=clock,
                     owner=owner, on_event=events.append if events is not None else None)


def modes(path: Path) -> dict[str, str]:
    routing = load_config(path).routing
    return {zone: mode_for(routing, zone, "assign_load") for zone in ZONES}


def flipped_zones(catalogue: Catalogue) -> set[str]:
    with catalogue.engine.connect() as conn:
        return {z for (z,) in conn.execute(sa.select(cutover_plans.c.zone).where(
            cutover_plans.c.status.in_(("executed", "rolled_back"))))}


def test_a_plan_moves_every_zone_through_every_step_and_records_each_decision(
        path: Path, catalogue: Catalogue, ready: None) -> None:
    clock = FakeClock(T0, Traffic(path, catalogue))
    events: list[CanaryEvent] = []
    outcome = canary(path, catalogue, clock, events=events).run()
    assert outcome.status == "done" and outcome.step == outcome.total == 6
    assert modes(path) == {"den": "new", "lax": "new", "chi": "new"}
    assert clock.slept == 6 * 60  # each of the six steps soaked its full minute, no more
    steps = audit.entries(catalogue.engine, action="canary.step")
    assert [(e.subject, e.detail["from"], e.detail["to"]) for e in steps] == [
        (f"zone:{z}", a, b) for z in ZONES for a, b in (("shadow", "reverse"), ("reverse", "new"))]
    soaks = audit.entries(catalogue.engine, action="canary.soak")
    assert [e.detail["measured"] for e in soaks] == [True, False] * 3
    assert soaks[0].detail["figures"]["pairs"] >= 50 and soaks[0].detail["figures"]["error_rate"] == 0
    assert len(audit.entries(catalogue.engine, action="canary.done")) == 1
    assert audit.verify(catalogue.engine)[0]
    assert [e.kind for e in events if e.kind in ("flip", "passed")] == ["flip", "passed"] * 6
    progress = progress_of(catalogue.engine, parse_plan(PLAN).id)
    assert progress is not None and progress.status == "done" and progress.owner is None
    again: list[CanaryEvent] = []
    assert canary(path, catalogue, clock, events=again).run().status == "done"
    assert [e.kind for e in again] == ["done"] and "done already" in again[0].message


def test_a_slow_new_engine_halts_the_plan_and_rolls_that_zone_back_only(
        path: Path, catalogue: Catalogue, ready: None) -> None:
    traffic = Traffic(path, catalogue)
    traffic.behaviour[("lax", "reverse")] = {"new_ms": 400.0}
    clock = FakeClock(T0, traffic)
    outcome = canary(path, catalogue, clock).run()
    assert outcome.status == "halted" and outcome.zone == "lax"
    assert "new p95 latency 400.0 ms > 100 ms" in outcome.reason and "back in shadow" in outcome.reason
    assert modes(path) == {"den": "new", "lax": "shadow", "chi": "shadow"}  # den kept, chi never touched
    assert "chi" not in flipped_zones(catalogue)
    breach = audit.entries(catalogue.engine, action="canary.breach")
    assert [e.subject for e in breach] == ["zone:lax"] and breach[0].detail["figures"]["new_p95_ms"] == 400.0
    assert [e.subject for e in audit.entries(catalogue.engine, action="cutover.rollback")] == ["zone:lax"]
    # The breach is caught at the first check with enough pairs (25 s in: 50 pairs), not at the end of the soak.
    assert clock.slept == 60 + 60 + 30
    with pytest.raises(ShadowError, match="halted at step 3 of 6 \\(zone lax\\)"):
        canary(path, catalogue, clock).run()
    # Resumed, lax starts over at its first step, which faces the gates again: they still see the slow pairs.
    traffic.behaviour.clear()
    again = canary(path, catalogue, clock).run(resume_after_halt=True)
    assert again.status == "halted" and "gates fail for zone lax → reverse" in again.reason
    assert "new p95 latency" in again.reason and modes(path)["lax"] == "shadow"


def test_errors_of_the_new_engine_in_reverse_breach_the_sla(path: Path, catalogue: Catalogue, ready: None) -> None:
    traffic = Traffic(path, catalogue)
    traffic.behaviour[("den", "reverse")] = {"new_errors": 0.1}
    outcome = canary(path, catalogue, FakeClock(T0, traffic)).run()
    assert outcome.status == "halted" and outcome.zone == "den" and "new error rate 10.00 % > 1 %" in outcome.reason
    assert modes(path) == {"den": "shadow", "lax": "shadow", "chi": "shadow"}


def test_unexplained_differences_breach_the_match_rate(path: Path, catalogue: Catalogue, ready: None) -> None:
    traffic = Traffic(path, catalogue)
    traffic.behaviour[("den", "reverse")] = {"driver": "Bob"}
    outcome = canary(path, catalogue, FakeClock(T0, traffic)).run()
    assert outcome.status == "halted" and "match rate 0.00 % < 99 %" in outcome.reason


def test_missing_data_during_a_soak_is_a_breach(path: Path, catalogue: Catalogue, ready: None) -> None:
    clock = FakeClock(T0, Traffic(path, catalogue, zones=[]))  # the proxies record nothing
    events: list[CanaryEvent] = []
    outcome = canary(path, catalogue, clock, events=events).run()
    assert outcome.status == "halted" and outcome.zone == "den"
    assert "only 0 pair(s) in the soak, 50 needed: missing data never passes" in outcome.reason
    assert clock.slept == 60 + 10  # judged at the end of the soak (early on, few pairs are normal), after the
    # 10 s the late pairs are given to land
    assert modes(path)["den"] == "shadow"
    assert [e.kind for e in events][-3:] == ["breach", "rollback", "halt"]
    clock.traffic = Traffic(path, catalogue)  # the proxies record pairs again
    resumed = canary(path, catalogue, clock).run(resume_after_halt=True)
    assert resumed.status == "done" and modes(path) == {"den": "new", "lax": "new", "chi": "new"}
    assert len(audit.entries(catalogue.engine, action="canary.resume")) == 1


@pytest.mark.parametrize("settle", [30, 5])
def test_pairs_stored_late_are_waited_for_not_taken_for_missing_data(path: Path, catalogue: Catalogue, ready: None,
                                                                     settle: int) -> None:
    # The catalogue gets each pair 15 s after its command; the soak needs all 120 pairs of its minute.
    plan = PLAN.replace('zones = ["den", "lax", "chi"]', 'zones = ["den"]').replace("min_pairs = 50", "min_pairs = 120")
    clock = FakeClock(T0, Traffic(path, catalogue, lag=15))
    events: list[CanaryEvent] = []
    outcome = canary(path, catalogue, clock, plan + f"settle_seconds = {settle}\n", events=events).run()
    waits = [e.message for e in events if e.kind == "check" and "waiting for late pairs" in e.message]
    assert waits[0].startswith("91 pairs")  # those received in the first 45 s
    if settle == 30:
        assert outcome.status == "done"
        assert clock.slept == 2 * 60 + 20  # reverse waited 20 s for the last of its pairs; new is not measured
    else:
        assert outcome.status == "halted" and "only 101 pair(s) in the soak, 120 needed" in outcome.reason


def test_a_restarted_controller_resumes_the_interrupted_soak(path: Path, catalogue: Catalogue, ready: None) -> None:
    traffic = Traffic(path, catalogue)
    clock = FakeClock(T0, traffic)
    clock.crash_after = 60 + 60 + 25  # in lax's reverse soak, after its checks at 0, 10 and 20 s
    with pytest.raises(Crash):
        canary(path, catalogue, clock, owner="c1").run()
    progress = progress_of(catalogue.engine, parse_plan(PLAN).id)
    assert progress is not None and (progress.step, progress.zone, progress.mode, progress.phase) == (
        2, "lax", "reverse", "soak") and progress.status == "running"
    clock.crash_after = None
    clock.t += timedelta(seconds=5)  # the restart took a while
    events: list[CanaryEvent] = []
    outcome = canary(path, catalogue, clock, owner="c2", events=events).run()
    assert outcome.status == "done"
    assert events[0].kind == "resume" and "step 3 of 6 (zone lax, soak)" in events[0].message
    assert "soak in reverse for 60 s, 35 s left" in events[1].message  # 20 s soaked before the crash, 5 s since
    flips = [(e.subject, e.detail["to"]) for e in audit.entries(catalogue.engine, action="canary.step")]
    assert flips.count(("zone:lax", "reverse")) == 1  # not flipped again
    assert clock.slept == 6 * 60 - 5  # the soak went on where it stopped: the restart's 5 s counted


def test_a_flip_that_landed_before_a_crash_is_not_made_again(path: Path, catalogue: Catalogue, ready: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(T0, Traffic(path, catalogue))
    real = Controller.execute

    def execute_then_die(self: Controller, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise Crash()

    monkeypatch.setattr(Controller, "execute", execute_then_die)
    with pytest.raises(Crash):
        canary(path, catalogue, clock).run()
    assert modes(path)["den"] == "reverse"
    monkeypatch.setattr(Controller, "execute", real)
    events: list[CanaryEvent] = []
    assert canary(path, catalogue, clock, events=events).run().status == "done"
    assert len([e for e in audit.entries(catalogue.engine, action="cutover.flip") if e.subject == "zone:den"]) == 2
    assert "landed before the controller stopped" in json.dumps(progress_of(
        catalogue.engine, parse_plan(PLAN).id).history)


def test_the_first_flip_of_a_zone_must_pass_its_gates(path: Path, catalogue: Catalogue) -> None:
    compare_into(arrivals(300, zone="den", start=T0 - timedelta(minutes=50)), catalogue)  # lax has no pairs at all
    outcome = canary(path, catalogue, FakeClock(T0, Traffic(path, catalogue, zones=["den"]))).run()
    assert outcome.status == "halted" and outcome.zone == "lax" and "gates fail for zone lax" in outcome.reason
    assert "sample size" in outcome.reason
    assert modes(path) == {"den": "new", "lax": "shadow", "chi": "shadow"}
    assert not audit.entries(catalogue.engine, action="cutover.rollback")  # nothing was flipped in lax


def test_a_later_step_stands_on_its_soak_not_on_the_gates_unless_every_step_is_gated(
        path: Path, catalogue: Catalogue, ready: None) -> None:
    # In reverse, legacy is the shadow: its slowness fails the gate `legacy p95 latency`, not the new engine's SLA.
    traffic = Traffic(path, catalogue)
    traffic.behaviour[("den", "reverse")] = {"legacy_ms": 400.0}
    plan = PLAN.replace('zones = ["den", "lax", "chi"]', 'zones = ["den"]')
    outcome = canary(path, catalogue, FakeClock(T0, traffic), plan).run()
    assert outcome.status == "done" and modes(path)["den"] == "new"
    forced = [e.detail for e in audit.entries(catalogue.engine, action="cutover.flip") if e.detail["to"] == "new"]
    assert forced[0]["forced"] is True and "passed its reverse soak" in forced[0]["reason"]
    assert audit.entries(catalogue.engine, action="canary.step")[-1].detail["evidence"]["mode"] == "reverse"


def test_every_step_gated_halts_on_the_failing_gate(path: Path, catalogue: Catalogue, ready: None) -> None:
    traffic = Traffic(path, catalogue)
    traffic.behaviour[("den", "reverse")] = {"legacy_ms": 400.0}
    plan = PLAN.replace('zones = ["den", "lax", "chi"]', 'zones = ["den"]\ngates = "every-step"')
    outcome = canary(path, catalogue, FakeClock(T0, traffic), plan).run()
    assert outcome.status == "halted" and "every flip must pass the gates" in outcome.reason
    assert "legacy p95 latency" in outcome.reason and modes(path)["den"] == "reverse"


def test_a_zone_already_in_a_step_s_mode_is_soaked_in_place_and_one_beyond_skips_it(
        path: Path, catalogue: Catalogue, ready: None) -> None:
    path.write_text(path.read_text().replace('zones = { nyc = "reverse" }', 'zones = { den = "reverse", lax = "new" }'))
    events: list[CanaryEvent] = []
    clock = FakeClock(T0, Traffic(path, catalogue))
    assert canary(path, catalogue, clock, events=events).run().status == "done"
    assert [(e.zone, e.kind) for e in events if e.kind in ("skip", "flip")] == [
        ("den", "flip"), ("lax", "skip"), ("chi", "flip"), ("chi", "flip")]
    assert clock.slept == 5 * 60  # den soaked reverse in place, then new; lax new in place; chi both


def test_a_breach_in_a_zone_the_canary_did_not_flip_halts_without_a_rollback(
        path: Path, catalogue: Catalogue, ready: None) -> None:
    path.write_text(path.read_text().replace('zones = { nyc = "reverse" }', 'zones = { DEN = "reverse" }'))
    traffic = Traffic(path, catalogue)
    traffic.behaviour[("den", "reverse")] = {"new_ms": 400.0}
    plan = PLAN.replace('zones = ["den", "lax", "chi"]', 'zones = ["Den"]')  # zones match whatever their case
    outcome = canary(path, catalogue, FakeClock(T0, traffic), plan).run()
    assert outcome.status == "halted" and "new p95 latency 400.0 ms" in outcome.reason
    assert "left in reverse: it ran reverse before the canary" in outcome.reason and modes(path)["den"] == "reverse"
    assert not audit.entries(catalogue.engine, action="cutover.rollback")


def test_a_zone_changed_under_its_soak_halts_and_is_left_alone(path: Path, catalogue: Catalogue, ready: None) -> None:
    traffic = Traffic(path, catalogue)

    def guard_steps_in(start: datetime, seconds: float) -> None:
        traffic(start, seconds)
        if start >= T0 + timedelta(seconds=30):
            path.write_text(path.read_text().replace('den = "reverse"', 'den = "shadow"'))

    outcome = canary(path, catalogue, FakeClock(T0, guard_steps_in)).run()
    assert outcome.status == "halted" and "changed outside the canary" in outcome.reason
    assert not audit.entries(catalogue.engine, action="cutover.rollback")


def test_a_run_needs_the_admin_token(path: Path, catalogue: Catalogue, ready: None) -> None:
    with pytest.raises(ShadowError, match="needs the admin token"):
        canary(path, catalogue, FakeClock(T0), token=None).run()
    assert progress_of(catalogue.engine, parse_plan(PLAN).id) is None and modes(path)["den"] == "shadow"


def test_a_plan_run_by_a_live_controller_is_not_taken_over(path: Path, catalogue: Catalogue, ready: None) -> None:
    clock = FakeClock(T0, Traffic(path, catalogue))
    first = canary(path, catalogue, clock, owner="c1")
    first._claim(False)  # c1 runs it (and is still beating)
    with pytest.raises(ShadowError, match="being run by c1"):
        canary(path, catalogue, clock, owner="c2").run()
    clock.t += timedelta(seconds=first.lease_s + 1)  # c1 went silent
    assert canary(path, catalogue, clock, owner="c2").run().status == "done"


@pytest.mark.parametrize(("text", "message"), [
    ('zones = ["den"]\nsteps = ["reverse"]\nsoak = 5\n', "plan.toml: soak: unknown key"),
    ('zones = ["den"]\nsteps = ["new", "reverse"]\n', "plan.toml: steps[1]: 'reverse' after 'new'"),
    ('zones = ["den", "DEN"]\nsteps = ["new"]\n', "zones: 'DEN' is listed twice"),
    ('zones = []\nsteps = ["new"]\n', "plan.toml: zones: List should have at least 1 item"),
    ('zones = ["den"]\nsteps = ["sideways"]\n', "plan.toml: steps[0].mode: Input should be 'shadow', 'reverse'"),
    ('zones = ["den"]\nsteps = ["new"]\n[sla]\nmax_p95_ms = "fast"\n', "plan.toml: sla.max_p95_ms: Input should be"),
    ('zones = ["den"]\nsteps = ["new"]\n[sla]\nmin_pairs = 0\n', "plan.toml: sla.min_pairs: Input should be greater"),
    ('zones = ["den"]\nsteps = [{ mode = "new", soak = 3 }]\n', "plan.toml: steps[0].soak: unknown key"),
    ('zones = ["den"\n', "plan.toml: not valid TOML"),
])
def test_a_bad_plan_file_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_plan(text, source="plan.toml")
    assert message in str(refused.value)


def test_a_plan_is_the_same_plan_whatever_its_comments(tmp_path: Path) -> None:
    plain = parse_plan(PLAN)
    commented = parse_plan("# canary for the west\n" + PLAN.replace("soak_seconds = 60", "soak_seconds = 60  # 1 min"))
    assert plain.id == commented.id and plain.id != parse_plan(PLAN.replace("60", "90")).id
    per_step = parse_plan(PLAN.replace('"new"]', '{ mode = "new", soak_seconds = 1800 }]'))
    assert [per_step.soak_for(s) for s in per_step.steps] == [60, 1800]
    with pytest.raises(ConfigError, match="no such plan file"):
        load_plan(tmp_path / "missing.toml")
    assert isinstance(plain, CanaryPlan) and plain.schedule()[:2] == [("den", plain.steps[0]), ("den", plain.steps[1])]


def test_the_cli_runs_a_plan_and_shows_its_status(path: Path, catalogue: Catalogue, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Real time here: a one-step plan to `new` (watched, no pairs needed) with a soak of a fifth of a second.
    compare_into(arrivals(300, zone="den", start=datetime.now(timezone.utc) - timedelta(minutes=50)), catalogue)
    plan = tmp_path / "canary.toml"
    plan.write_text('zones = ["den"]\nsteps = ["new"]\nsoak_seconds = 0.2\n[sla]\ncheck_seconds = 0.1\n')
    refused = runner.invoke(app, ["cutover", "run", str(plan), "--config", str(path)])
    assert refused.exit_code == 1 and "admin token" in refused.output
    monkeypatch.setenv("SHADOW_ADMIN_TOKEN", TOKEN)
    done = runner.invoke(app, ["cutover", "run", str(plan), "--config", str(path)])
    assert done.exit_code == 0, done.output
    assert "zone den: shadow → new" in done.output and "done" in done.output and TOKEN not in done.output
    status = runner.invoke(app, ["cutover", "canary-status", str(plan), "--config", str(path), "--json"])
    assert status.exit_code == 0 and json.loads(status.stdout)[0]["status"] == "done"
    listing = runner.invoke(app, ["cutover", "canary-status", "--config", str(path)])
    assert listing.exit_code == 0 and "done" in listing.output
    lax = tmp_path / "lax.toml"
    lax.write_text('zones = ["lax"]\nsteps = ["new"]\nsoak_seconds = 0.2\n')  # lax has no pairs: gates fail
    halted = runner.invoke(app, ["cutover", "run", str(lax), "--config", str(path), "--json"])
    assert halted.exit_code == 1 and json.loads(halted.stdout)["status"] == "halted"
    again = runner.invoke(app, ["cutover", "run", str(lax), "--config", str(path)])
    assert again.exit_code == 1 and "--resume-after-halt" in again.output
    bad = tmp_path / "bad.toml"
    bad.write_text('zones = ["lax"]\nsteps = ["new"]\nsoak_minutes = 3\n')
    refused_plan = runner.invoke(app, ["cutover", "run", str(bad), "--config", str(path)])
    assert refused_plan.exit_code == 2 and "soak_minutes: unknown key" in refused_plan.output
    assert registry.registered(catalogue.engine) == []
