"""`shadow cutover …`: the release manager's commands (gates first; plan, execute and rollback build on them)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from shadow.cli import common
from shadow.cli.common import ConfigOption, JsonOption, StoreOption, cutover_app, handle_errors, out, print_json


@cutover_app.command("check")
@handle_errors
def cutover_check(zone: str = typer.Option(..., "--zone", "-z", help="the zone to check"),
                  command: Optional[str] = typer.Option(None, "--command", help="only this command kind"),
                  config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                  as_json: bool = JsonOption) -> None:
    """Evaluate every readiness gate for a zone; exit 0 only when all pass (missing or stale data fails).

    Examples:
      shadow cutover check --zone chicago
      shadow cutover check --zone chicago --command assign_load --json
    """
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
