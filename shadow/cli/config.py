"""`shadow config`: validate and show shadow.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rich.table import Table

from shadow.cli.common import ConfigOption, JsonOption, config_app, examples, handle_errors, load_cli_config, out, print_json


@config_app.command("check", epilog=examples(
    "shadow config check",
    "shadow config check --config .demo/shadow.toml --json"))
@handle_errors
def config_check(config: Optional[Path] = ConfigOption, as_json: bool = JsonOption) -> None:
    """Validate shadow.toml; exit 2 with file, key and reason when it is wrong."""
    cfg = load_cli_config(config)
    assert cfg is not None
    if as_json:
        print_json(cfg.model_dump(mode="json"))
        return
    table = Table(title=f"{cfg.source} is valid", show_header=True)
    table.add_column("section")
    table.add_column("value")
    for name, target in cfg.targets.items():
        state = f", state {target.state}" if target.state else ""
        table.add_row(f"targets.{name}", f"{target.url} (timeout {target.timeout:g}s{state})")
    for route in cfg.routes:
        read = f"  ← {route.read}" if route.read else ""
        table.add_row("route", f"{route.match} → {route.command} keys={route.keys}{read}")
    table.add_row("routing", f"default {cfg.routing.default}; zones {dict(cfg.routing.zones) or '{}'}")
    table.add_row("store", f"{cfg.store.url}; rules {cfg.store.rules}")
    out.print(table)
