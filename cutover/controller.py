"""The cutover controller: plan a flip, execute it (gates, config edit, wait for every proxy), roll it back.

A flip is a change of a few `[routing]` lines in `shadow.toml`. `plan` shows the
change, the gates and what the guard will watch, under a plan id (a hash of the
config, the change and the gate figures). `execute` refuses when any of those
changed since, or when a gate fails (unless forced, with a reason), writes the
file, pushes the new version (Postgres NOTIFY; proxies also watch the file) and
waits until every live proxy runs it; on timeout it reverts by itself. Every
step is appended to the hash-chained audit log.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from cutover import registry
from cutover.flip import Flip, config_lock, flip_text, hold_text, text_sha, write_config, zone_back_to_legacy
from cutover.gates import GateResult, evaluate_gates
from cutover.routing import RouteTable, mode_for
from rules.catalogue import Catalogue
from rules.schema import cutover_plans, pair_hours
from shadow import audit
from shadow.config import Config, Mode, parse_config
from shadow.errors import ShadowError
from shadow.secrets import redact

__all__ = ["Controller", "Plan", "Execution", "CutoverStatus", "actor_of", "guard_rollback"]


def actor_of(token: str | None, as_name: str | None) -> str:
    """Who acts: `--as`, else the admin token's name (`name:secret`), else `admin`. Never the secret."""
    if as_name:
        return as_name
    if token and ":" in token:
        return token.split(":", 1)[0]
    return "admin"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Plan:
    """A flip waiting to be executed."""

    id: str
    zone: str
    command: str | None
    from_mode: Mode
    to_mode: Mode
    diff: str
    gates: list[GateResult]
    guard: dict[str, Any]
    config_path: str
    config_sha: str

    @property
    def gates_pass(self) -> bool:
        """Whether every gate passed when the plan was made."""
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"id": self.id, "zone": self.zone, "command": self.command, "from": self.from_mode, "to": self.to_mode,
                "diff": self.diff, "gates": [g.to_dict() for g in self.gates], "gates_pass": self.gates_pass,
                "guard": self.guard, "config": self.config_path}


@dataclass(frozen=True)
class Execution:
    """What a flip (or its revert) did: the version now in force and how fast every proxy took it."""

    plan: str | None
    zone: str
    command: str | None
    from_mode: Mode
    to_mode: Mode
    version: str
    propagation_s: float | None
    proxies: dict[str, str]            # instance → version it reported last
    reverted: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"plan": self.plan, "zone": self.zone, "command": self.command, "from": self.from_mode,
                "to": self.to_mode, "version": self.version, "propagation_s": self.propagation_s,
                "proxies": self.proxies, "reverted": self.reverted, "note": self.note}


@dataclass(frozen=True)
class CutoverStatus:
    """Per zone and command kind the mode in force, and every proxy's version and guard."""

    version: str
    commands: list[str]
    modes: dict[str, dict[str, Mode]]          # zone → command kind → mode
    proxies: list[registry.ProxyRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {"version": self.version, "modes": self.modes, "proxies": [p.to_dict() for p in self.proxies]}


def _figures(gates: list[GateResult]) -> list[tuple[str, str | None, bool, str]]:
    return [(g.gate, g.command, g.passed, g.figure) for g in gates]


class Controller:
    """Plans, executes and rolls back flips of one `shadow.toml`, recording them in the catalogue's audit log."""

    def __init__(self, config_path: Path, catalogue: Catalogue, *, actor: str = "admin", token: str | None = None,
                 now: datetime | None = None) -> None:
        self.path = Path(config_path)
        self.catalogue = catalogue
        self.actor = actor
        self._token = token
        self._now = now  # for tests: the instant gates are evaluated at

    # -- reading -------------------------------------------------------------------

    def _text(self) -> tuple[str, Config]:
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise ShadowError(f"cannot read {self.path}: {exc.strerror}", hint="pass --config PATH") from None
        return text, parse_config(text, source=str(self.path))

    def _gates(self, config: Config, zone: str, command: str | None, *,
               as_of: datetime | None = None) -> list[GateResult]:
        return evaluate_gates(self.catalogue, config, zone, command=command, now=as_of or self._now)

    def status(self) -> CutoverStatus:
        """Modes per zone (those configured and those the catalogue has seen) and command kind; the proxies."""
        _text, config = self._text()
        zones = set(config.routing.zones)
        for own in config.routing.commands.values():
            zones |= set(own.zones)
        with self.catalogue.engine.connect() as conn:
            zones |= {z for (z,) in conn.execute(sa.select(pair_hours.c.zone).distinct()) if z}
        commands = sorted({r.command for r in config.routes} | set(config.routing.commands))
        modes = {zone: {c: mode_for(config.routing, zone, c) for c in commands or ["*"]} for zone in sorted(zones)}
        return CutoverStatus(RouteTable.from_config(config).version, commands, modes,
                             registry.registered(self.catalogue.engine))

    # -- planning ------------------------------------------------------------------

    def plan(self, zone: str, to: Mode, *, command: str | None = None) -> Plan:
        """The change, the gate results and what the guard will watch, recorded under a plan id."""
        text, config = self._text()
        flip = flip_text(text, zone, to, command=command, source=str(self.path))
        if flip.from_mode == to:
            raise ShadowError(f"zone {zone}{' command ' + command if command else ''} already runs {to}",
                              hint="`shadow cutover status` shows every zone's mode")
        as_of = self._now or datetime.now(timezone.utc)
        gates = self._gates(config, zone, command, as_of=as_of)
        guard = {"watches": "every command's result on the new primary in the zone, and the new engine's health "
                            "probe", "budget_s": config.cutover.availability_budget_s,
                 "active": to in ("reverse", "new")}
        sha = text_sha(text)
        material = json.dumps([sha, zone, command, to, _figures(gates)], sort_keys=True)
        plan_id = hashlib.sha256(material.encode()).hexdigest()[:12]
        plan = Plan(plan_id, zone, command, flip.from_mode, to, flip.diff, gates, guard, str(self.path), sha)
        detail = {**plan.to_dict(), "old_text": text, "as_of": as_of.isoformat()}
        stmt = cutover_plans.insert().values(
            id=plan_id, created_at=_now(), actor=self.actor, zone=zone, command=command, from_mode=flip.from_mode,
            to_mode=to, config_path=str(self.path), config_sha=sha, detail=orjson.dumps(detail).decode(),
            status="planned", updated_at=_now())
        with self.catalogue.engine.begin() as conn:
            if conn.execute(sa.select(cutover_plans.c.id).where(cutover_plans.c.id == plan_id)).first() is None:
                conn.execute(stmt)
        audit.append(self.catalogue.engine, actor=self.actor, action="cutover.plan", subject=f"zone:{zone}",
                     detail={"plan": plan_id, "command": command, "from": flip.from_mode, "to": to,
                             "diff": flip.diff, "gates": [g.to_dict() for g in gates]})
        return plan

    def _plan_row(self, plan_id: str) -> dict[str, Any]:
        with self.catalogue.engine.connect() as conn:
            rows = conn.execute(sa.select(cutover_plans).where(cutover_plans.c.id.like(f"{plan_id}%"))
                                .limit(2)).mappings().all()
        if len(rows) != 1:
            raise ShadowError(f"no plan {plan_id!r}" if not rows else f"plan id {plan_id!r} is ambiguous",
                              hint="`shadow cutover plan --zone Z --to MODE` prints a plan id")
        return dict(rows[0])

    def _set_status(self, plan_id: str, status: str) -> None:
        with self.catalogue.engine.begin() as conn:
            conn.execute(cutover_plans.update().where(cutover_plans.c.id == plan_id)
                         .values(status=status, updated_at=_now()))

    # -- acting --------------------------------------------------------------------

    def authorise(self) -> str:
        """Refuse without the admin token; where proxies run, they confirm it (they compare in constant time)."""
        if not self._token:
            raise ShadowError("a flip needs the admin token", hint="set the proxies' admin token variable "
                                                                   "(SHADOW_ADMIN_TOKEN by default) before running")
        live = [p for p in registry.registered(self.catalogue.engine) if p.state == "live"]
        for proxy in live:
            request = urllib.request.Request(f"http://{proxy.address}/-/admin/status",
                                             headers={"Authorization": f"Bearer {self._token}"})
            try:
                with urllib.request.urlopen(request, timeout=2):
                    return f"confirmed by proxy {proxy.instance}"
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    raise ShadowError("the admin token was refused by the proxies",
                                      hint="use the token the proxies were started with") from None
            except OSError:
                continue
        return "no live proxy to confirm the token"

    def execute(self, plan_id: str, *, force: bool = False, reason: str | None = None,
                wait_s: float = 10.0) -> Execution:
        """Carry out a plan; refuse if anything changed since, or a gate fails without --force --reason."""
        row = self._plan_row(plan_id)
        plan_id = row["id"]
        if row["status"] != "planned":
            raise ShadowError(f"plan {plan_id} was {row['status']} already", hint="make a new plan")
        checked = self.authorise()
        text, config = self._text()
        detail = orjson.loads(row["detail"])
        age = (self._now or datetime.now(timezone.utc)) - datetime.fromisoformat(detail["as_of"])
        if age.total_seconds() > config.cutover.plan_valid_minutes * 60:
            self._refuse(plan_id, row, "plan too old", [f"made {age.total_seconds() / 60:.0f} min ago"])
            raise ShadowError(f"plan {plan_id} is {age.total_seconds() / 60:.0f} min old (plans hold "
                              f"{config.cutover.plan_valid_minutes:g} min)", hint="make a new plan")
        changes: list[str] = []
        if text_sha(text) != row["config_sha"]:
            import difflib

            changes.append("shadow.toml changed since the plan:\n" + redact("".join(difflib.unified_diff(
                detail["old_text"].splitlines(keepends=True), text.splitlines(keepends=True), "planned", "now"))))
        before = {(g["gate"], g["command"]): (g["passed"], g["figure"]) for g in detail["gates"]}
        gates = self._gates(config, row["zone"], row["command"], as_of=datetime.fromisoformat(detail["as_of"]))
        moved: list[str] = []
        for g in gates:
            was = before.get((g.gate, g.command))
            if was == (g.passed, g.figure):
                continue
            old = "absent" if was is None else f"{'pass' if was[0] else 'fail'} {was[1]}"
            change = f"gate {g.gate} ({g.command or 'all'}): {old} → {'pass' if g.passed else 'fail'} {g.figure}"
            # A pinned gate's figure is fixed for the plan's instant; a window gate's moves with live
            # traffic in the current hour, so only a change of its result refuses the plan.
            (changes if g.pinned or was is None or was[0] != g.passed else moved).append(change)
        if changes:
            self._refuse(plan_id, row, "changed since the plan", changes)
            raise ShadowError(f"plan {plan_id} refused: changed since it was made:\n  " + "\n  ".join(changes),
                              hint="make a new plan with `shadow cutover plan`")
        failing = [g for g in gates if not g.passed]
        if failing and not force:
            self._refuse(plan_id, row, "gates fail", [f"{g.gate} ({g.command or 'all'}): {g.figure}" for g in failing],
                         final=False)
            raise ShadowError(f"plan {plan_id} refused: {len(failing)} gate(s) fail (" + "; ".join(
                f"{g.gate} {g.command or ''} {g.figure}" for g in failing[:5]) + ")",
                hint="fix what the gates show, or --force --reason TEXT (recorded)")
        if failing and not (reason and reason.strip()):
            raise ShadowError("--force needs --reason TEXT: it is recorded in the audit log")
        flip = flip_text(text, row["zone"], row["to_mode"], command=row["command"], source=str(self.path))
        audit.append(self.catalogue.engine, actor=self.actor, action="cutover.flip", subject=f"zone:{row['zone']}",
                     detail={"plan": plan_id, "command": row["command"], "from": flip.from_mode, "to": flip.to_mode,
                             "diff": flip.diff, "gates": [g.to_dict() for g in gates], "forced": bool(failing),
                             "reason": reason, "token": checked, "moved_since_plan": moved})
        result = self._apply(flip, wait_s, plan_id)
        self._set_status(plan_id, "reverted" if result.reverted else "executed")
        return result

    def _refuse(self, plan_id: str, row: dict[str, Any], why: str, details: list[str], *, final: bool = True) -> None:
        if final:  # a plan whose ground moved is spent; one refused for failing gates may still be forced
            self._set_status(plan_id, "refused")
        audit.append(self.catalogue.engine, actor=self.actor, action="cutover.refused", subject=f"zone:{row['zone']}",
                     detail={"plan": plan_id, "why": why, "details": details})

    def rollback(self, zone: str, *, command: str | None = None, wait_s: float = 10.0,
                 reason: str | None = None) -> Execution:
        """Restore the mode the zone ran before its last executed flip."""
        self.authorise()
        with self.catalogue.engine.connect() as conn:
            query = sa.select(cutover_plans).where(cutover_plans.c.zone == zone, cutover_plans.c.status == "executed")
            query = query.where(cutover_plans.c.command.is_(None) if command is None
                                else cutover_plans.c.command == command)
            last = conn.execute(query.order_by(cutover_plans.c.updated_at.desc()).limit(1)).mappings().first()
        if last is None:
            raise ShadowError(f"no executed flip of zone {zone}{' command ' + command if command else ''} to roll back",
                              hint="`shadow audit list --zone ZONE` shows the zone's history")
        text, _config = self._text()
        flip = flip_text(text, zone, last["from_mode"], command=command, source=str(self.path))
        audit.append(self.catalogue.engine, actor=self.actor, action="cutover.rollback", subject=f"zone:{zone}",
                     detail={"plan": last["id"], "command": command, "from": flip.from_mode, "to": flip.to_mode,
                             "diff": flip.diff, "reason": reason})
        result = self._apply(flip, wait_s, last["id"])
        self._set_status(last["id"], "rolled_back")
        return result

    def _apply(self, flip: Flip, wait_s: float, plan_id: str | None) -> Execution:
        """Two phases: every proxy holds the zone's commands, then takes the new mode and releases them.

        No command of the zone runs under the old table on one proxy while another already runs
        the new one. A proxy that does not take a phase in time makes the flip revert by itself.
        """
        path, source = self.path, str(self.path)
        started = time.monotonic()
        with config_lock(path):  # a guard may have rolled a zone back since we read the file
            if text_sha(path.read_text()) != text_sha(flip.old_text):
                raise ShadowError(f"{path} changed while the flip was being made (a guard's rollback?)",
                                  hint="`shadow cutover status`, then plan again")
            held = hold_text(flip.old_text, flip.zone, hold=True, source=source)
            write_config(path, held)
        hold_version = self._version(held)
        registry.notify_routing(self.catalogue.engine, hold_version)
        reached, lagging = self._wait_for(hold_version, wait_s)
        if not lagging:
            with config_lock(path):
                final = flip_text(path.read_text(), flip.zone, flip.to_mode, command=flip.command, source=source,
                                  release=True)
                write_config(path, final.new_text)
            version = self._version(final.new_text)
            registry.notify_routing(self.catalogue.engine, version)
            reached, lagging = self._wait_for(version, wait_s)
            if not lagging:
                return Execution(plan_id, flip.zone, flip.command, flip.from_mode, flip.to_mode, version,
                                 time.monotonic() - started, reached)
        # Some proxy did not take the new table in time: put the zone back as it was, everywhere.
        with config_lock(path):
            current = path.read_text()
            if mode_for(parse_config(current, source=source).routing, flip.zone, flip.command) != flip.from_mode:
                current = flip_text(current, flip.zone, flip.from_mode, command=flip.command, source=source).new_text
            back = hold_text(current, flip.zone, hold=False, source=source)
            write_config(path, back)
        back_version = self._version(back)
        registry.notify_routing(self.catalogue.engine, back_version)
        audit.append(self.catalogue.engine, actor=self.actor, action="cutover.revert", subject=f"zone:{flip.zone}",
                     detail={"plan": plan_id, "why": f"{len(lagging)} proxy(ies) did not take the flip within "
                                                     f"{wait_s:g}s", "lagging": lagging})
        reached, _ = self._wait_for(back_version, wait_s)
        return Execution(plan_id, flip.zone, flip.command, flip.from_mode, flip.to_mode, back_version, None, reached,
                         reverted=True, note=f"reverted: {', '.join(lagging)} did not take the flip in {wait_s:g}s")

    def _version(self, text: str) -> str:
        return RouteTable.from_config(parse_config(text, source=str(self.path))).version

    def _wait_for(self, version: str, wait_s: float) -> tuple[dict[str, str], list[str]]:
        """Poll every live proxy's /-/health (its registry heartbeat when unreachable) until all run `version`."""
        deadline = time.monotonic() + wait_s
        live = [p for p in registry.registered(self.catalogue.engine) if p.state == "live"]
        seen = {p.instance: p.version for p in live}
        while True:
            for proxy in live:
                if seen[proxy.instance] != version:
                    seen[proxy.instance] = _health_version(proxy.address) or seen[proxy.instance]
            lagging = [instance for instance, v in seen.items() if v != version]
            if not lagging or time.monotonic() >= deadline:
                return seen, lagging
            time.sleep(0.02)
            if any(v != version for v in seen.values()):
                beats = {p.instance: p.version for p in registry.registered(self.catalogue.engine)}
                seen.update({i: beats[i] for i in seen if seen[i] != version and beats.get(i) == version})


def _health_version(address: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{address}/-/health", timeout=0.5) as response:
            return json.loads(response.read()).get("route_table")
    except (OSError, ValueError):
        return None


def guard_rollback(path: Path, zone: str, engine: Any, detail: dict[str, Any]) -> str | None:
    """The guard's flip back: make legacy primary in the zone in shadow.toml (once, whichever proxy trips first).

    Returns the new route-table version, or None when the file already had the zone on legacy.
    """
    with config_lock(path):
        text = path.read_text()
        flips = zone_back_to_legacy(text, zone, source=str(path))
        if not flips:
            return None
        final = flips[-1].new_text
        write_config(path, final)
    version = RouteTable.from_config(parse_config(final, source=str(path))).version
    registry.notify_routing(engine, version)
    audit.append(engine, actor="guard", action="guard.rollback", subject=f"zone:{zone}",
                 detail={**detail, "version": version, "diff": "".join(f.diff for f in flips)})
    return version
