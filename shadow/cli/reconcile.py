"""`shadow reconcile`: compare a table in the legacy and new state databases, keyed, and file the differences.

Exit codes: 0 the tables agree, 1 differences found, 2 bad config, 3 a database cannot be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from shadow.cli.common import (ConfigOption, JsonOption, RulesOption, StoreOption, app, examples, handle_errors,
                               load_cli_config, out, print_json, progress_bar, render_value)


@app.command("reconcile", epilog=examples(
    "shadow reconcile --table loads",
    "shadow reconcile --table loads --where \"zone = 'den'\" --no-store --json"))
@handle_errors
def reconcile_cmd(table: str = typer.Option(..., "--table", "-t", help="a table configured as \\[tables.NAME] in shadow.toml"),
                  where: Optional[str] = typer.Option(None, "--where",
                                                      help="SQL condition on both sides, overriding the config's"),
                  method: Optional[str] = typer.Option(None, "--method",
                                                       help="auto | checksum | stream (default: the table's method)"),
                  no_store: bool = typer.Option(False, "--no-store", help="report only; file nothing in the catalogue"),
                  config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                  rules: Optional[Path] = RulesOption, as_json: bool = JsonOption) -> None:
    """Compare a table row by row, keyed, between the legacy and new state databases (read-only on both).

    Rows only in legacy, only in new, and rows that differ after the rules are filed as
    quirks of command kind reconcile:<table>. Exit 0 when the tables agree, 1 when they differ.
    """
    from reports.reconcile import reconcile_table
    from rules.catalogue import open_catalogue
    from shadow.errors import ConfigError

    if method is not None and method not in ("auto", "checksum", "stream"):
        raise ConfigError(f"--method {method!r} is not one of auto, checksum, stream")
    cfg = load_cli_config(config)
    assert cfg is not None
    catalogue = None if no_store else open_catalogue(store or cfg.store.url.reveal())
    try:
        with progress_bar(quiet=as_json) as progress:
            task = progress.add_task(f"reconciling {table}", total=None)
            result = reconcile_table(cfg, table, where=where, catalogue=catalogue,
                                     rules_folder=rules if rules is not None else cfg.store.rules, method=method,
                                     on_start=lambda total: progress.update(task, total=total),
                                     on_progress=lambda rows: progress.advance(task, rows))
    finally:
        if catalogue is not None:
            catalogue.close()
    if as_json:
        print_json(result.to_dict())
    else:
        _summary(result)
    raise typer.Exit(0 if result.agree else 1)


def _summary(result: object) -> None:
    r = result  # a reports.reconcile.ReconcileResult
    out.print(f"[bold]{r.table}[/]: {r.legacy_rows:,} legacy rows, {r.new_rows:,} new rows read in {r.seconds:.1f} s "
              f"({r.rows_per_second:,.0f} rows/s, {r.method})"
              + (f"; {r.ranges:,} key ranges checksummed, {r.ranges_differing:,} differed" if r.ranges else ""))
    if r.columns_only_legacy or r.columns_only_new:
        out.print(Text(f"not compared — columns only in legacy: {', '.join(r.columns_only_legacy) or '-'}; "
                       f"only in new: {', '.join(r.columns_only_new) or '-'}", style="dim"))
    table = Table(title=f"{r.table}: what differs")
    table.add_column("what", style="bold")
    table.add_column("rows", justify="right")
    table.add_column("how", overflow="fold")
    table.add_column("examples: key  legacy → new", overflow="fold")
    table.add_row("only in legacy", f"{r.only_legacy:,}", "absent in new",
                  Text(", ".join(_key(e) for e in r.only_legacy_examples)))
    table.add_row("only in new", f"{r.only_new:,}", "absent in legacy",
                  Text(", ".join(_key(e) for e in r.only_new_examples)))
    for name, column in sorted(r.columns.items()):
        how = ", ".join(f"{t} {n:,}" for t, n in column.transitions.most_common())
        examples = Text("\n").join(Text(f"{_key(example['key'])}  ") + render_value(example["legacy"], 30)
                                   + Text(" → ", style="dim") + render_value(example["new"], 30)
                                   for example in column.examples[:3])
        table.add_row(name, f"{column.rows:,}", how, examples)
    out.print(table)
    verdict = "[green]the tables agree[/]" if r.agree else \
        f"[red]{r.only_legacy + r.only_new + r.differing:,} row(s) differ[/]"
    stored = f"; {r.stored.pairs:,} pair result(s) filed, {len(r.quirks)} quirk(s) — `shadow quirks list " \
             f"--command reconcile:{r.table}`" if r.stored else ""
    out.print(f"{verdict} ({r.differing:,} differing, {r.normalised:,} equal once the rules applied"
              f"{', ' + format(r.recovered, ',') + ' fixed since the last run' if r.recovered else ''}){stored}")


def _key(key: dict) -> str:
    return "/".join(str(v) for v in key.values())
