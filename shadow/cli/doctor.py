"""`shadow doctor` (is everything shadow.toml names reachable and sound?) and `shadow catalogue upgrade`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from shadow.cli.common import (ConfigOption, JsonOption, StoreOption, app, examples, handle_errors, out, print_json,
                               store_url)

catalogue_app = typer.Typer(help="The catalogue database: create it, or migrate it to this version's schema.",
                            no_args_is_help=True)
app.add_typer(catalogue_app, name="catalogue")

_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@app.command("doctor", epilog=examples("shadow doctor", "shadow doctor --config /etc/shadow/shadow.toml --json"))
@handle_errors
def doctor_cmd(config: Optional[Path] = ConfigOption,
               timeout: float = typer.Option(3.0, "--timeout", min=0.1, help="seconds each network check may take"),
               as_json: bool = JsonOption) -> None:
    """Check the config, the targets, the state databases, Kafka, the catalogue, the rule files and the admin
    token: one line each, with a fix for each failure. Exit 1 when any check fails."""
    from shadow.doctor import diagnose

    path = config if config is not None else Path("shadow.toml")
    checks = diagnose(path, timeout=timeout)
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        print_json({"config": str(path), "ok": not failed, "checks": [c.to_dict() for c in checks]})
    else:
        table = Table(title=f"shadow doctor: {path}", title_justify="left")
        table.add_column("check", no_wrap=True)
        table.add_column("", no_wrap=True)
        table.add_column("detail", overflow="fold")
        table.add_column("fix", overflow="fold")
        for check in checks:
            table.add_row(check.name, Text(check.status, style=_STYLES[check.status]), Text(check.detail),
                          Text(check.fix))
        out.print(table)
        warned = sum(c.status == "warn" for c in checks)
        out.print(Text(f"{len(failed)} failed, {warned} warning(s), {len(checks) - len(failed) - warned} ok",
                       style="bold red" if failed else "green"))
    if failed:
        raise typer.Exit(1)


@catalogue_app.command("upgrade", epilog=examples("shadow catalogue upgrade",
                                                  "shadow catalogue upgrade --store postgresql+psycopg://shadow@db/shadow"))
@handle_errors
def catalogue_upgrade(config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                      as_json: bool = JsonOption) -> None:
    """Create the catalogue, or migrate it to the latest schema revision (every command that writes does this too)."""
    from rules.catalogue import open_catalogue
    from shadow.doctor import catalogue_revision, head_revision
    from shadow.errors import ShadowError
    from shadow.secrets import mask_url

    url = store_url(config, store)
    try:
        before = catalogue_revision(url)
    except ShadowError:
        before = None  # a SQLite file not made yet
    open_catalogue(url).close()
    head = head_revision()
    if as_json:
        print_json({"catalogue": mask_url(url), "from": before, "to": head})
        return
    if before == head:
        out.print(f"{mask_url(url)} is at the latest revision {head}: nothing to do", markup=False)
    else:
        out.print(f"{mask_url(url)}: {before or 'empty'} → {head}", markup=False)
