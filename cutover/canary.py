"""Canary plans: zones moved one after another through modes, each step soaked against an SLA (`shadow cutover run`).

A plan file names the zones (in order), the modes each goes through and the SLA
every soak must hold. For each zone and step, `CanaryRun` flips through the
`Controller` (gates, admin token, waiting for every proxy, audit), then soaks:
every `check_seconds` it reads the zone's pairs since the flip (`cutover.sla`)
and, on a breach, rolls the zone back to the mode the canary found it in and
halts. Progress is persisted in `canary_progress` after every transition, so a
restarted run resumes where it stopped, including the rest of an interrupted
soak. Every decision is appended to the audit log.

Rules (also in the README, "Canary plans"):
- The first step the canary flips in a zone must pass the gates. A later step
  of the same zone may go through failing gates, forced and recorded, only on
  the evidence of the soak it just passed (`gates = "every-step"`: never).
- A zone already in a step's mode is soaked in place (not flipped); a zone
  beyond it skips the step.
- A soak is judged on the pairs received in [flip, flip + soak]: rates once
  `min_pairs` are in (a breach halts at once), too few pairs at the end is a
  breach, after `settle_seconds` for late pairs to reach the catalogue.
- A soak in `new` is watched, not measured: nothing is mirrored there, so there
  is no pair; the zone must stay in `new` for the soak time (a guard's rollback
  rewrites shadow.toml, which halts the plan).
- A zone whose mode changes under a soak (the guard or a person) halts the plan
  and is left as it is.
- A halted plan resumes only when asked (`resume_after_halt`); it retries the
  halted zone from its first step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol

import sqlalchemy as sa

from cutover import registry
from cutover.canary_plan import (RANK, CanaryPlan, CanaryProgress, CanaryStep, all_progress, load_plan, parse_plan,
                                 progress_of)
from cutover.controller import Controller, Execution
from cutover.routing import mode_for
from cutover.sla import MEASURED_MODES, SoakFigures, judge, soak_figures
from rules.schema import canary_progress, cutover_plans
from shadow import audit
from shadow.config import parse_config
from shadow.errors import ShadowError

# The plan file and its progress live in cutover.canary_plan; they are re-exported here, the module people import.
__all__ = ["CanaryPlan", "CanaryStep", "CanaryRun", "CanaryEvent", "CanaryOutcome", "CanaryProgress", "Clock",
           "SystemClock", "load_plan", "parse_plan", "progress_of", "all_progress"]

log = logging.getLogger(__name__)
# Plan + execute tries: under live traffic the gate figures (the newest pair's time, the error rate's pair count)
# move between plan and execute, and the controller refuses a plan whose figures moved. Measured with two proxies at
# 60 commands/s: two refusals before a flip went through, every time.
_ATTEMPTS = 5


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


# -- time ------------------------------------------------------------------------------

class Clock(Protocol):
    """Where a canary run reads the time and waits: the system's, or a test's that never sleeps for real."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait this long (must not raise on a short or zero wait)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        """Wait for real."""
        time.sleep(max(0.0, seconds))


# -- a run ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CanaryEvent:
    """Something a run did or saw, for a front end to show (kinds: start, resume, skip, flip, soak, check,
    passed, breach, rollback, halt, done)."""

    kind: str
    message: str
    zone: str | None = None
    step: int | None = None
    mode: str | None = None
    figures: SoakFigures | None = None
    elapsed_s: float | None = None
    soak_s: float | None = None


@dataclass(frozen=True)
class CanaryOutcome:
    """How a run ended: done, or halted (and why)."""

    plan: str
    status: str
    step: int
    total: int
    zone: str | None
    reason: str | None
    history: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view: the `--json` summary."""
        return {"plan": self.plan, "status": self.status, "step": self.step, "total": self.total, "zone": self.zone,
                "reason": self.reason, "history": self.history}


class CanaryRun:
    """Runs one canary plan through a `Controller`, persisting its progress in the controller's catalogue."""

    def __init__(self, plan: CanaryPlan, controller: Controller, *, clock: Clock | None = None,
                 owner: str | None = None, on_event: Callable[[CanaryEvent], None] | None = None,
                 plan_file: str = "plan.toml") -> None:
        self.plan = plan
        self.controller = controller
        self.clock: Clock = clock or SystemClock()
        self.owner = owner or registry.new_instance_id()
        self.on_event = on_event
        self.plan_file = plan_file
        self.schedule = plan.schedule()
        self.engine = controller.catalogue.engine
        # A running plan whose controller was silent this long may be taken over by another one.
        self.lease_s = max(30.0, 3 * plan.sla.check_seconds)

    # -- plumbing ------------------------------------------------------------------

    def _emit(self, kind: str, message: str, p: CanaryProgress | None = None, **extra: Any) -> None:
        if self.on_event is not None:
            where = {"zone": p.zone, "step": p.step, "mode": p.mode} if p else {}
            self.on_event(CanaryEvent(kind, message, **{**where, **extra}))

    def _audit(self, action: str, subject: str, detail: dict[str, Any]) -> None:
        audit.append(self.engine, actor=self.controller.actor, action=action, subject=subject,
                     detail={"plan": self.plan.id, "plan_file": self.plan_file, **detail})

    def _note(self, p: CanaryProgress, event: str, **detail: Any) -> None:
        p.history.append({"at": _iso(self.clock.now()), "event": event, "step": p.step, "zone": p.zone,
                          "mode": p.mode, **detail})

    def _save(self, p: CanaryProgress) -> None:
        now = self.clock.now().astimezone(timezone.utc).replace(tzinfo=None)
        p.updated_at = now.replace(tzinfo=timezone.utc)
        with self.engine.begin() as conn:
            done = conn.execute(canary_progress.update().where(canary_progress.c.plan == p.plan)
                                .values(step=p.step, state=p.state_json(), updated_at=now)).rowcount
            if not done:
                conn.execute(canary_progress.insert().values(plan=p.plan, step=p.step, state=p.state_json(),
                                                             updated_at=now))

    def _mode(self, zone: str) -> str:
        path = self.controller.path
        config = parse_config(path.read_text(), source=str(path))
        return mode_for(config.routing, zone, self.plan.command)

    def _claim(self, resume_after_halt: bool) -> CanaryProgress:
        """Load or start the plan's progress and take it over; refuse a halted plan unless asked, and a plan
        another live controller is running."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(canary_progress).where(canary_progress.c.plan == self.plan.id)).first()
        if row is None:
            p = CanaryProgress(plan=self.plan.id, total=len(self.schedule), plan_file=self.plan_file, owner=self.owner)
            self._note(p, "start")
            self._save(p)
            self._audit("canary.start", f"canary:{self.plan.id}", {"zones": self.plan.zones,
                        "steps": [s.model_dump() for s in self.plan.steps], "sla": self.plan.sla.model_dump()})
            self._emit("start", f"canary plan {self.plan.id}: {len(self.plan.zones)} zone(s) × "
                                f"{len(self.plan.steps)} step(s)", p)
            return p
        p = CanaryProgress.from_row(row)
        age = (self.clock.now() - p.updated_at).total_seconds() if p.updated_at else None
        if p.status == "running" and p.owner not in (None, self.owner) and age is not None and age < self.lease_s:
            raise ShadowError(f"canary plan {p.plan} is being run by {p.owner} (last seen {age:.0f} s ago)",
                              hint=f"stop that controller, or wait {self.lease_s:.0f} s after it stops: a run it "
                                   "left is then taken over")
        if p.status == "halted":
            if not resume_after_halt:
                raise ShadowError(f"canary plan {p.plan} halted at step {p.step + 1} of {p.total} "
                                  f"(zone {p.zone}): {p.reason}",
                                  hint="fix the cause, then `shadow cutover run PLAN --resume-after-halt`")
            p.status, p.reason = "running", None
        p.plan_file = self.plan_file
        resumed = p.status == "running"
        p.owner = self.owner
        if resumed:
            self._note(p, "resume")
        self._save(p)
        if resumed:
            where = f"step {p.step + 1} of {p.total}" + (f" (zone {p.zone}, {p.phase})" if p.zone else "")
            self._audit("canary.resume", f"canary:{p.plan}", {"step": p.step, "zone": p.zone, "phase": p.phase})
            self._emit("resume", f"canary plan {p.plan} resumes at {where}", p)
        return p

    def _release(self, p: CanaryProgress) -> None:
        p.owner = None
        self._save(p)

    # -- the run -------------------------------------------------------------------

    def run(self, *, resume_after_halt: bool = False) -> CanaryOutcome:
        """Run (or resume) the plan to its end, or until it halts."""
        self.controller.authorise()  # every state-changing call needs the admin token: refuse before anything
        p = self._claim(resume_after_halt)
        try:
            if p.status == "running":
                while p.step < len(self.schedule):
                    if self._advance(p):
                        break
                else:
                    p.status, p.zone, p.mode, p.phase = "done", None, None, "flip"
                    self._note(p, "done")
                    self._save(p)
                    self._audit("canary.done", f"canary:{p.plan}", {"zones": self.plan.zones})
                    self._emit("done", f"canary plan {p.plan} done: every zone went through "
                                       f"{' → '.join(s.mode for s in self.plan.steps)}", p)
            elif p.status == "done":
                self._emit("done", f"canary plan {p.plan} was done already", p)
        finally:
            try:
                self._release(p)
            except Exception as exc:  # the store is down: do not hide why the run stopped; the lease runs out
                log.warning("canary plan %s: could not release the run: %s", p.plan, exc)
        return CanaryOutcome(p.plan, p.status, p.step, p.total, p.zone, p.reason, p.history)

    def _advance(self, p: CanaryProgress) -> bool:
        """Run (or resume) the current step; True when the plan halted."""
        zone, step = self.schedule[p.step]
        if p.zone != zone or p.mode != step.mode:  # a step not begun yet
            p.zone, p.mode, p.phase, p.from_mode, p.started_at = zone, step.mode, "flip", None, None
        current = self._mode(zone)
        if zone not in p.zone_start:
            p.zone_start[zone] = current
        if p.phase == "flipping":  # the run stopped while flipping: did the flip land?
            if current == step.mode:
                self._start_soak(p, flipped=True, note="the flip landed before the controller stopped")
            elif current == p.from_mode:
                p.phase = "flip"
            else:
                return self._halt(p, f"zone {zone} runs {current}, neither {p.from_mode} nor {step.mode}: changed "
                                     "outside the canary; left as it is", rollback=False)
        if p.phase == "flip":
            if RANK[current] > RANK[step.mode]:
                self._note(p, "skip", detail=f"zone runs {current} already")
                self._audit("canary.skip", f"zone:{zone}", {"step": p.step, "mode": step.mode, "runs": current})
                self._emit("skip", f"zone {zone}: runs {current} already, step {step.mode} skipped", p)
                p.step += 1
                self._save(p)
                return False
            if current == step.mode:
                self._start_soak(p, flipped=False, note=f"zone runs {current} already: soaked in place")
            elif self._flip(p, zone, current, step.mode):
                return True
        return self._soak(p, zone, step)

    def _plan_status(self, plan_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(cutover_plans.c.status).where(cutover_plans.c.id == plan_id)).scalar()

    def _flip(self, p: CanaryProgress, zone: str, current: str, target: str) -> bool:
        """Plan and execute the step's flip; True when the plan halted instead."""
        evidence = p.passed if p.passed and p.passed.get("zone") == zone and p.passed.get("mode") == current else None
        forcible = self.plan.gates == "first-step" and evidence is not None
        p.phase, p.from_mode = "flipping", current
        self._save(p)
        result: Execution | None = None
        forced = False
        for attempt in range(_ATTEMPTS):
            plan = self.controller.plan(zone, target, command=self.plan.command)  # type: ignore[arg-type]
            failing = [g for g in plan.gates if not g.passed]
            if failing and not forcible:
                p.phase = "flip"
                why = "; ".join(f"{g.gate} ({g.command or 'all'}): {g.figure}, needs {g.threshold}" for g in failing)
                rule = "every flip must pass the gates" if self.plan.gates == "every-step" else \
                    "the first flip of a zone must pass the gates"
                return self._halt(p, f"gates fail for zone {zone} → {target} ({rule}): {why}", rollback=False,
                                  detail={"cutover_plan": plan.id, "gates": [g.to_dict() for g in plan.gates]})
            forced = bool(failing)
            reason = (f"canary {self.plan.id}: zone {zone} passed its {current} soak "
                      f"({evidence['summary'] if evidence else ''}); after a zone's first step the soak's SLA "
                      f"stands in for the gates") if forced else None
            try:
                result = self.controller.execute(plan.id, force=forced, reason=reason, wait_s=self.plan.wait_seconds)
                break
            except ShadowError as exc:
                # Live traffic moves gate figures (the newest pair's time) between plan and execute: plan again.
                if self._plan_status(plan.id) == "refused" and attempt + 1 < _ATTEMPTS:
                    continue
                p.phase = "flip"
                return self._halt(p, f"flip of zone {zone} to {target} refused: {exc.message}", rollback=False,
                                  detail={"cutover_plan": plan.id})
        assert result is not None
        if result.reverted:
            p.phase = "flip"
            return self._halt(p, f"flip of zone {zone} to {target} reverted by the controller: {result.note}",
                              rollback=False, detail={"cutover_plan": result.plan})
        self._audit("canary.step", f"zone:{zone}", {"step": p.step, "from": current, "to": target,
                                                    "cutover_plan": result.plan, "forced": forced,
                                                    "evidence": evidence, "version": result.version})
        self._emit("flip", f"zone {zone}: {current} → {target}" + (" (gates forced on the soak just passed)"
                                                                  if forced else "") +
                   f"; version {result.version}", p)
        self._start_soak(p, flipped=True, note=f"{current} → {target}, version {result.version}", forced=forced)
        return False

    def _start_soak(self, p: CanaryProgress, *, flipped: bool, note: str, forced: bool = False) -> None:
        p.phase, p.flipped, p.started_at = "soak", flipped, self.clock.now()
        self._note(p, "flip" if flipped else "soak", detail=note, forced=forced)
        self._save(p)

    def _soak(self, p: CanaryProgress, zone: str, step: CanaryStep) -> bool:
        """Hold the step for its soak time, checking the SLA; True when the plan halted."""
        sla, soak = self.plan.sla, self.plan.soak_for(step)
        assert p.started_at is not None
        measured = step.mode in MEASURED_MODES
        elapsed = (self.clock.now() - p.started_at).total_seconds()
        self._emit("soak", f"zone {zone}: soak in {step.mode} for {soak:g} s" +
                   (f", {max(0.0, soak - elapsed):.0f} s left" if elapsed >= 0.5 else "") +
                   ("" if measured else " (watched, not measured: nothing is mirrored in new)"), p,
                   elapsed_s=elapsed, soak_s=soak)
        end = p.started_at + timedelta(seconds=soak)
        while True:
            now = self.clock.now()
            elapsed = (now - p.started_at).total_seconds()
            final = elapsed >= soak
            current = self._mode(zone)
            if current != step.mode:
                return self._halt(p, f"zone {zone} runs {current}, not {step.mode}: changed outside the canary during "
                                     f"the soak (a guard's rollback or a person: `shadow audit list --subject "
                                     f"zone:{zone}` shows which); left as it is", rollback=False)
            figures = soak_figures(self.engine, zone, step.mode, p.started_at, min(now, end),
                                   command=self.plan.command, legacy_latency=sla.latency_factor is not None) \
                if measured else None
            breaches = judge(sla, step.mode, figures, final=final) if figures is not None else []
            # Pairs reach the catalogue in batches, some seconds after their command: at the end of the soak,
            # too few of them is judged only once the late ones had `settle_seconds` to land.
            late = final and figures is not None and figures.pairs < sla.min_pairs and elapsed < soak + sla.settle_seconds
            p.last_check = {"at": _iso(now), "elapsed_s": round(elapsed, 3), "soak_s": soak,
                            "figures": figures.to_dict() if figures else None}
            self._emit("check", (figures.summary() if figures else "watched") +
                       ("; waiting for late pairs" if late else ""), p, figures=figures,
                       elapsed_s=min(elapsed, soak), soak_s=soak)
            if breaches and not late:
                return self._breach(p, zone, step, figures, breaches)
            if final and not late:
                break
            self._save(p)  # also the run's heartbeat: another controller does not take over a live run
            self.clock.sleep(min(sla.check_seconds, soak - elapsed) if not final else
                             min(sla.check_seconds, soak + sla.settle_seconds - elapsed))
        summary = figures.summary() if figures else f"stayed in {step.mode}"
        p.passed = {"zone": zone, "mode": step.mode, "summary": summary,
                    "figures": figures.to_dict() if figures else None}
        self._note(p, "passed", figures=p.passed["figures"])
        self._audit("canary.soak", f"zone:{zone}", {"step": p.step, "mode": step.mode, "soak_s": soak,
                                                    "measured": measured, "figures": p.passed["figures"]})
        self._emit("passed", f"zone {zone}: {step.mode} held its SLA for {soak:g} s ({summary})", p, figures=figures)
        p.step += 1
        p.phase, p.started_at = "flip", None
        self._save(p)
        return False

    def _breach(self, p: CanaryProgress, zone: str, step: CanaryStep, figures: SoakFigures | None,
                breaches: list[str]) -> bool:
        self._audit("canary.breach", f"zone:{zone}", {"step": p.step, "mode": step.mode, "breaches": breaches,
                                                      "figures": figures.to_dict() if figures else None})
        self._emit("breach", f"zone {zone}: SLA breach in {step.mode}: " + "; ".join(breaches), p, figures=figures)
        return self._halt(p, f"SLA breach in zone {zone} ({step.mode}): " + "; ".join(breaches), rollback=True)

    def _roll_back(self, zone: str, start: str, why: str) -> tuple[str, bool]:
        """Undo the zone's flips, newest first, until it runs `start`, the mode the canary found it in."""
        undone = 0
        for _ in range(len(self.plan.steps)):
            if self._mode(zone) == start:
                break
            try:
                result = self.controller.rollback(zone, command=self.plan.command, wait_s=self.plan.wait_seconds,
                                                  reason=f"canary {self.plan.id}: {why}")
            except ShadowError as exc:
                return f"rollback of zone {zone} failed: {exc.message}; roll it back by hand", False
            if result.reverted:
                return (f"rollback of zone {zone} did not reach every proxy ({result.note}); it still runs "
                        f"{result.from_mode}: roll it back by hand", False)
            self._emit("rollback", f"zone {zone}: rolled back {result.from_mode} → {result.to_mode}", zone=zone,
                       mode=result.to_mode)
            undone += 1
        now = self._mode(zone)
        if now != start:
            return f"zone {zone} runs {now} after the rollback, not {start} as the canary found it", False
        if not undone:
            return (f"zone {zone} left in {start}: it ran {start} before the canary, which did not flip it; "
                    f"`shadow cutover rollback --zone {zone}` if it must go back"), True
        return f"zone {zone} back in {start}, the mode the canary found it in", True

    def _halt(self, p: CanaryProgress, reason: str, *, rollback: bool, detail: dict[str, Any] | None = None) -> bool:
        zone = p.zone
        assert zone is not None
        rolled = None
        if rollback:
            note, ok = self._roll_back(zone, p.zone_start[zone], reason)
            rolled = {"result": note, "complete": ok}
            reason = f"{reason}. {note}"
        p.status, p.reason, p.phase, p.started_at, p.passed = "halted", reason, "flip", None, None
        self._note(p, "halt", reason=reason)
        self._audit("canary.halt", f"zone:{zone}", {"step": p.step, "mode": p.mode, "reason": reason,
                                                    "rollback": rolled, **(detail or {})})
        self._emit("halt", f"canary plan {p.plan} halted: {reason}", p)
        if rollback:  # resumed, the plan retries the zone from its first step, from whatever mode it then runs
            p.step = next(i for i, (z, _s) in enumerate(self.schedule) if z == zone)
            p.mode = None
        self._save(p)
        return True
