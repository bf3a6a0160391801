"""`shadow cutover …`: the release manager's commands (gates first; plan, execute and rollback build on them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from shadow.cli import common
from shadow.cli.common import ConfigOption, JsonOption, StoreOption, cutover_app, examples, handle_errors, out, print_json


@cutover_app.command("check", epilog=examples(
    "shadow cutover check --zone den",
    "shadow cutover check --zone den --command assign_load --json"))
@handle_errors
def cutover_check(zone: str = typer.Option(..., "--zone", "-z", help="the zone to check"),
                  command: Optional[str] = typer.Option(None, "--command", help="only this command kind"),
                  config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                  as_json: bool = JsonOption) -> None:
    """Evaluate every readiness gate for a zone; exit 0 only when all pass (missing or stale data fails)."""
    from cutover.gates import evaluate_gates
    from rules.catalogue import open_catalogue

    loaded = common.load_cli_config(config)
    assert loaded is not None
    catalogue = open_catalogue(store or loaded.store.url.reveal())
    try:
        results = evaluate_gates(catalogue, loaded, zone, command=command)
    finally:
        catalogue.close()
    passed = all(r.passed for r in results)
    if as_json:
        print_json({"zone": zone, "command": command, "passed": passed, "gates": [r.to_dict() for r in results]})
    else:
        table = Table(title=f"gates for zone {zone}" + (f", command {command}" if command else ""), title_justify="left")
        for column in ("gate", "command", "result", "figure", "threshold", "detail"):
            table.add_column(column, overflow="fold")
        for r in results:
            table.add_row(r.gate, r.command or "(all)", Text("pass", style="green") if r.passed else
                          Text("FAIL", style="bold red"), r.figure, r.threshold, Text(r.detail))
        out.print(table)
        failed = sum(not r.passed for r in results)
        out.print(Text(f"all {len(results)} gates pass", style="green") if passed else
                  Text(f"{failed} of {len(results)} gates fail: zone {zone} is not ready", style="bold red"))
    if not passed:
        raise typer.Exit(1)


def _controller(config: Optional[Path], store: Optional[str], as_name: Optional[str]) -> Any:
    import os

    from cutover.controller import Controller, actor_of
    from rules.catalogue import open_catalogue
    from shadow.secrets import register_secret

    path = config or Path("shadow.toml")
    loaded = common.load_cli_config(path)
    assert loaded is not None
    token = os.environ.get(loaded.proxy.admin_token_env) or None  # the CLI is the edge: env is read here only
    register_secret(token)
    catalogue = open_catalogue(store or loaded.store.url.reveal())
    return Controller(path, catalogue, actor=actor_of(token, as_name), token=token)


AsOption = typer.Option(None, "--as", help="who acts, for the audit log (default: the admin token's name)")
WaitOption = typer.Option(10.0, "--wait", min=0.1, help="seconds to wait for every proxy before reverting")


def _gate_table(gates: list[Any], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("gate", "command", "result", "figure", "threshold"):
        table.add_column(column, overflow="fold")
    for g in gates:
        table.add_row(g.gate, g.command or "(all)", Text("pass", style="green") if g.passed else
                      Text("FAIL", style="bold red"), g.figure, g.threshold)
    return table


@cutover_app.command("plan", epilog=examples(
    "shadow cutover plan --zone den --to reverse",
    "shadow cutover plan --zone den --to new --command assign_load"))
@handle_errors
def cutover_plan(zone: str = typer.Option(..., "--zone", "-z", help="the zone to flip"),
                 to: str = typer.Option(..., "--to", help="legacy, shadow, reverse or new"),
                 command: Optional[str] = typer.Option(None, "--command", help="flip only this command kind"),
                 config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                 as_name: Optional[str] = AsOption, as_json: bool = JsonOption) -> None:
    """Show the exact change to shadow.toml, the gates and what the guard will watch; print a plan id."""
    controller = _controller(config, store, as_name)
    try:
        plan = controller.plan(zone, to, command=command)  # type: ignore[arg-type]
    finally:
        controller.catalogue.close()
    if as_json:
        print_json(plan.to_dict())
        return
    out.print(Text(f"plan {plan.id}: zone {zone}{' command ' + command if command else ''}: "
                   f"{plan.from_mode} → {plan.to_mode}", style="bold"))
    out.print(Text(plan.diff))
    out.print(_gate_table(plan.gates, "gates"))
    guard = plan.guard
    out.print(f"guard: {'watches ' + guard['watches'] if guard['active'] else 'inactive (legacy stays primary)'}; "
              f"budget {guard['budget_s']:g} s", markup=False)
    verdict = "all gates pass" if plan.gates_pass else "some gates fail: execute needs --force --reason"
    out.print(Text(f"{verdict}. Next: shadow cutover execute {plan.id}", style="green" if plan.gates_pass else "yellow"))


@cutover_app.command("execute", epilog=examples(
    "SHADOW_ADMIN_TOKEN=dana:… shadow cutover execute 3f9a1c2e7b40",
    'shadow cutover execute 3f9a1c2e7b40 --force --reason "store outage"'))
@handle_errors
def cutover_execute(plan_id: str = typer.Argument(..., help="the id `shadow cutover plan` printed"),
                    force: bool = typer.Option(False, "--force", help="flip although a gate fails"),
                    reason: Optional[str] = typer.Option(None, "--reason", help="why, when forcing (recorded)"),
                    wait: float = WaitOption, config: Optional[Path] = ConfigOption,
                    store: Optional[str] = StoreOption, as_name: Optional[str] = AsOption,
                    as_json: bool = JsonOption) -> None:
    """Flip: re-check the plan, edit shadow.toml, wait until every proxy runs the new version (else revert)."""
    controller = _controller(config, store, as_name)
    try:
        result = controller.execute(plan_id, force=force, reason=reason, wait_s=wait)
    finally:
        controller.catalogue.close()
    _report(result, as_json)


@cutover_app.command("rollback", epilog=examples(
    "shadow cutover rollback --zone den",
    'shadow cutover rollback --zone den --reason "dispatchers miss loads"'))
@handle_errors
def cutover_rollback(zone: str = typer.Option(..., "--zone", "-z", help="the zone to put back"),
                     command: Optional[str] = typer.Option(None, "--command", help="only this command kind's flip"),
                     reason: Optional[str] = typer.Option(None, "--reason", help="why (recorded)"),
                     wait: float = WaitOption, config: Optional[Path] = ConfigOption,
                     store: Optional[str] = StoreOption, as_name: Optional[str] = AsOption,
                     as_json: bool = JsonOption) -> None:
    """Restore the mode the zone ran before its last flip."""
    controller = _controller(config, store, as_name)
    try:
        result = controller.rollback(zone, command=command, wait_s=wait, reason=reason)
    finally:
        controller.catalogue.close()
    _report(result, as_json)


def _report(result: Any, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
    elif result.reverted:
        out.print(Text(f"flip of zone {result.zone} reverted: {result.note}; version {result.version} in force",
                       style="bold red"))
    else:
        reached = f"{len(result.proxies)} proxy(ies) in {result.propagation_s:.2f} s" if result.proxies else \
            "no live proxy registered"
        out.print(Text(f"zone {result.zone}{' command ' + result.command if result.command else ''}: "
                       f"{result.from_mode} → {result.to_mode}; version {result.version} runs on {reached}",
                       style="green"))
    if result.reverted:
        raise typer.Exit(1)


@cutover_app.command("status", epilog=examples("shadow cutover status", "shadow cutover status --json"))
@handle_errors
def cutover_status(config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                   as_json: bool = JsonOption) -> None:
    """Per zone and command kind the mode in force; every proxy's version, heartbeat and guard."""
    controller = _controller(config, store, None)
    try:
        status = controller.status()
    finally:
        controller.catalogue.close()
    if as_json:
        print_json(status.to_dict())
        return
    out.print(Text(f"route table {status.version}", style="bold"))
    modes = Table(title="modes", title_justify="left")
    modes.add_column("zone")
    commands = status.commands or ["*"]
    for command in commands:
        modes.add_column(command)
    styles = {"legacy": "dim", "shadow": "", "reverse": "yellow", "new": "green"}
    for zone, by_command in status.modes.items():
        modes.add_row(zone, *(Text(by_command[c], style=styles[by_command[c]]) for c in commands))
    out.print(modes)
    proxies = Table(title="proxies", title_justify="left")
    for column in ("instance", "address", "version", "state", "heartbeat", "guard"):
        proxies.add_column(column, overflow="fold")
    for p in status.proxies:
        current = Text(p.version, style="green" if p.version == status.version else "red")
        proxies.add_row(p.instance, p.address, current, Text(p.state, style="green" if p.state == "live" else "red"),
                        f"{p.age_s:.1f} s ago", Text(", ".join(f"{z}: {g.get('state')}" for z, g in p.guard.items())))
    out.print(proxies if status.proxies else Text("no proxy registered", style="dim"))
