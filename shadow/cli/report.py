"""`shadow report` (terminal, HTML, tables, JUnit gate) and `shadow pairs show` (the entity audit)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from shadow.cli.common import (ConfigOption, JsonOption, StoreOption, app, err, examples, handle_errors, out,
                               pairs_app, print_json, render_value, render_when, store_url)
from shadow.errors import InputError

_FORMATS = ("terminal", "html", "json", "csv", "parquet")


@app.command("report", epilog=examples(
    "shadow report --format html -o report.html --since 7d",
    "shadow report --junit gate.xml --min-match-rate 99.5 --fail-on open"))
@handle_errors
def report(config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
           zone: Optional[str] = typer.Option(None, "--zone", help="only this zone"),
           command: Optional[str] = typer.Option(None, "--command", help="only this command kind"),
           since: Optional[str] = typer.Option(None, "--since", help="from this time: ISO (2026-11-02T10:00Z) or back "
                                                                    "from now (36h, 7d); applied by whole hours"),
           until: Optional[str] = typer.Option(None, "--until", help="up to this time (same forms as --since)"),
           fmt: str = typer.Option("terminal", "--format", "-f", help="terminal, html, json, csv or parquet"),
           output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                 help="file for html; folder for json, csv and parquet tables"),
           top: int = typer.Option(10, "--top", min=1, help="quirks shown in the terminal"),
           junit: Optional[Path] = typer.Option(None, "--junit", help="also write the CI gate as JUnit XML here"),
           min_match_rate: Optional[float] = typer.Option(None, "--min-match-rate",
                                                          help="gate: the accepted match rate (percent) every command "
                                                               "kind must reach"),
           fail_on: Optional[str] = typer.Option(None, "--fail-on",
                                                 help="gate: verdicts that fail it, e.g. open,reproduce"),
           snapshot: bool = typer.Option(True, "--snapshot/--no-snapshot",
                                         help="record this run's figures for the trend (the only write)")) -> None:
    """How close the new engine is: match rates, latency, quirks, what is new, the trend; exits 1 when a gate fails."""
    from reports.junit import Gate, evaluate, parse_fail_on, write_junit
    from reports.query import Scope, build_report, parse_when
    from reports.snapshots import record
    from rules.catalogue import open_catalogue

    if fmt not in _FORMATS:
        raise InputError(f"--format {fmt!r} is not one of {', '.join(_FORMATS)}")
    if fmt in ("html", "csv", "parquet") and output is None:
        raise InputError(f"--format {fmt} needs --output", hint="a file for html, a folder for csv and parquet")
    gate = Gate(min_match_rate, parse_fail_on(fail_on))
    scope = Scope(since=parse_when(since), until=parse_when(until), zone=zone, command=command)
    catalogue = open_catalogue(store_url(config, store))
    try:
        built = build_report(catalogue, scope)
        written: list[Path] = []
        if fmt == "html":
            from reports.html import write_html

            written.append(write_html(built, output))
        elif fmt in ("csv", "parquet") or (fmt == "json" and output is not None):
            from reports.tables import export

            written += export(catalogue, built, fmt, output)
        result = None
        if junit is not None or gate.min_match_rate is not None or gate.fail_on:
            result = evaluate(built, gate)
            if junit is not None:
                written.append(write_junit(built, result, junit))
        if snapshot:
            record(catalogue, built)
    finally:
        catalogue.close()
    if fmt == "json" and output is None:
        print_json({**built.to_dict(), **({"gate": {"passed": result.passed, "failures": [
            f"{c.suite}: {c.name}: {c.failure}" for c in result.failures]}} if result else {})})
    elif fmt == "terminal":
        from reports.terminal import render_terminal

        render_terminal(built, out, top=top)
    console = err if fmt == "json" and output is None else out
    for path in written:
        console.print(f"wrote {path}", markup=False)
    if result is not None:
        if result.passed:
            console.print(Text(f"gate passed: {len(result.checks)} check(s)", style="green"))
        else:
            for check in result.failures[:20]:
                console.print(Text(f"gate failed: {check.suite}: {check.failure}", style="red"))
            if len(result.failures) > 20:
                console.print(Text(f"… and {len(result.failures) - 20} more failure(s)", style="red"))
            raise typer.Exit(1)


@pairs_app.command("show", epilog=examples(
    "shadow pairs show --key load_id=L-000016",
    "shadow pairs show --key driver_id=D-CHI-03 --json"))
@handle_errors
def pairs_show(key: str = typer.Option(..., "--key", "-k", help="a natural key, NAME=VALUE, e.g. load_id=L-123"),
               config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
               limit: int = typer.Option(1000, "--limit", min=1, help="commands shown at most, oldest first"),
               as_json: bool = JsonOption) -> None:
    """Every command that touched one entity, in order: both outcomes, the differences, their quirks."""
    from reports.entity import entity_history, parse_key
    from rules.catalogue import open_catalogue

    name, value = parse_key(key)
    catalogue = open_catalogue(store_url(config, store))
    try:
        history = entity_history(catalogue, name, value, limit=limit)
    finally:
        catalogue.close()
    if as_json:
        print_json([p.to_dict() for p in history])
        return
    if not history:
        out.print(f"no stored pair touched {name}={value} in {catalogue.url}", markup=False)
        raise typer.Exit(1)
    out.print(Text(f"{len(history)} command(s) touched {name}={value}", style="bold"))
    for p in history:
        status = Text("match", style="green") if p.matched else Text(f"{len(p.differences)} difference(s)", style="red")
        out.print(Text(f"\n{render_when(p.received_at)}  {p.command}  ", style="bold") + status
                  + Text(f"  token {p.token}  zone {p.zone or '-'}  primary {p.primary}", style="dim"))
        table = Table(show_header=True, box=None, pad_edge=False)
        table.add_column("", style="dim")
        table.add_column("legacy", overflow="fold")
        table.add_column("new", overflow="fold")
        table.add_row("status", f"{p.legacy_status} {(p.legacy or {}).get('http_status') or ''}",
                      f"{p.new_status} {(p.new or {}).get('http_status') or ''}")
        table.add_row("latency", f"{p.legacy_latency_ms:,.1f} ms", f"{p.new_latency_ms:,.1f} ms")
        if p.legacy is not None and p.new is not None:
            table.add_row("response", render_value(p.legacy.get("response"), 70), render_value(p.new.get("response"), 70))
            table.add_row("state", render_value(p.legacy.get("state"), 70), render_value(p.new.get("state"), 70))
        out.print(table)
        for d in p.differences:
            out.print(Text("  ≠ ", style="red") + Text(d.path, style="bold") + Text("  ")
                      + render_value(d.legacy, 40) + Text(" → ", style="dim") + render_value(d.new, 40)
                      + Text(f"   quirk {d.quirk} ({d.verdict or '?'}): {d.description}", style="cyan"))
