"""`shadow quirks …` and `shadow rules …`: read and decide the quirk catalogue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from shadow.cli.common import (ConfigOption, JsonOption, RulesOption, StoreOption, audit_app, examples, handle_errors,
                               out, print_json, quirk_table, quirks_app, render_sides, render_when, rules_app,
                               rules_folder, store_url)
from shadow.errors import ShadowError


def _check_verdict(verdict: str | None) -> None:
    from rules.catalogue import VERDICTS

    if verdict is not None and verdict not in VERDICTS:
        raise ShadowError(f"--verdict {verdict!r} is not one of {', '.join(VERDICTS)}")


@quirks_app.command("list", epilog=examples(
    "shadow quirks list --verdict open --command assign_load --json",
    "shadow quirks list --zone chi --sort last_seen"))
@handle_errors
def quirks_list(config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                verdict: Optional[str] = typer.Option(None, "--verdict", help="open, reproduce, retire or noise"),
                command: Optional[str] = typer.Option(None, "--command", help="only quirks this command kind showed"),
                zone: Optional[str] = typer.Option(None, "--zone", help="only quirks seen in this zone"),
                entity: Optional[str] = typer.Option(None, "--entity", "--load",
                                                     help="only quirks that hit this entity (e.g. a load id)"),
                sort: str = typer.Option("count", "--sort", help="count, first_seen or last_seen"),
                limit: int = typer.Option(100, "--limit", min=1, help="quirks shown at most"),
                as_json: bool = JsonOption) -> None:
    """The quirks in the catalogue, most frequent first."""
    from rules.catalogue import open_catalogue

    _check_verdict(verdict)
    if sort not in ("count", "first_seen", "last_seen"):
        raise ShadowError(f"--sort {sort!r} is not one of count, first_seen, last_seen")
    catalogue = open_catalogue(store_url(config, store))
    try:
        found = catalogue.quirks(verdict=verdict, command=command, zone=zone, entity=entity, limit=limit, sort=sort)
        total = catalogue.count_quirks(verdict=verdict, command=command, zone=zone, entity=entity)
    finally:
        catalogue.close()
    if as_json:
        print_json([q.to_dict() for q in found])
        return
    shown = f"{total} quirk(s)" if total == len(found) else f"{len(found)} of {total} quirks (--limit to see more)"
    quirk_table(found, title=f"{shown} in {catalogue.url}")


@quirks_app.command("show", epilog=examples(
    "shadow quirks show 2946f7",
    "shadow quirks show 2946f7 --examples 10 --json"))
@handle_errors
def quirks_show(quirk_id: str = typer.Argument(..., help="quirk id (a unique prefix will do)"),
                config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                examples: int = typer.Option(5, "--examples", min=1, help="example differences shown at most"),
                as_json: bool = JsonOption) -> None:
    """One quirk: what it is, where and how often, and side-by-side example values."""
    from rules.catalogue import open_catalogue

    from shadow import audit

    catalogue = open_catalogue(store_url(config, store))
    try:
        quirk = catalogue.quirk(quirk_id, examples=examples)
        history = audit.entries(catalogue.engine, subject=f"quirk:{quirk.id}")
    finally:
        catalogue.close()
    if as_json:
        print_json({**quirk.to_dict(), "history": [e.to_dict() for e in history]})
        return
    out.print(f"[bold]quirk {quirk.id}[/]  verdict [bold]{quirk.verdict}[/]"
              + (f" ({quirk.verdict_source})" if quirk.verdict_source else ""))
    out.print(f"  what        {quirk.description}   (change: {quirk.change}, class: {quirk.transition})")
    out.print(f"  where       {', '.join(quirk.paths)}")
    out.print(f"  commands    {', '.join(quirk.commands)}")
    out.print(f"  zones       {', '.join(f'{z} {n:,}' for z, n in quirk.zones.items()) or '-'}")
    out.print(f"  seen        {quirk.differences:,} difference(s) in {quirk.pairs:,} pair(s), "
              f"{render_when(quirk.first_seen)} … {render_when(quirk.last_seen)}")
    for label, value in (("owner", quirk.owner), ("note", quirk.note), ("ticket", quirk.ticket)):
        if value:
            out.print(f"  {label:<11} {value}", markup=False)
    for entry in history:
        out.print(f"  history     {render_when(entry.at)} {entry.actor}: {entry.detail.get('from')} → "
                  f"{entry.detail.get('to')}" + (f" ({entry.detail['note']})" if entry.detail.get("note") else ""),
                  markup=False)
    table = Table(title="examples", show_lines=True)
    table.add_column("dispatch token", overflow="fold")
    table.add_column("command", overflow="fold")
    table.add_column("path", overflow="fold")
    table.add_column("legacy", style="red", overflow="fold")
    table.add_column("new", style="green", overflow="fold")
    for example in quirk.examples:
        legacy, new = render_sides(quirk, example)
        table.add_row(example.token, example.command or "", example.path, legacy, new)
    out.print(table)


@quirks_app.command("triage", epilog=examples(
    "shadow quirks triage 2946f7 --verdict retire --owner dana --ticket DISP-812",
    "shadow quirks triage 2946f7 8c01d2 --verdict noise --owner dana"))
@handle_errors
def quirks_triage(quirk_ids: list[str] = typer.Argument(..., help="quirk id(s); several for bulk triage"),
                  verdict: str = typer.Option(..., "--verdict", help="reproduce, retire or noise (or open to undo)"),
                  owner: str = typer.Option(..., "--owner", help="who decided"),
                  note: Optional[str] = typer.Option(None, "--note", help="why"),
                  ticket: Optional[str] = typer.Option(None, "--ticket", help="a tracker key, e.g. DISP-812"),
                  config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                  rules: Optional[Path] = RulesOption, as_json: bool = JsonOption) -> None:
    """Decide quirks: writes each quirk's rule file (comments kept) and its catalogue row."""
    from rules.catalogue import open_catalogue
    from rules.triage import triage

    _check_verdict(verdict)
    folder = rules_folder(config, rules)
    catalogue = open_catalogue(store_url(config, store))
    written = []
    try:
        for quirk_id in quirk_ids:
            written.append(triage(catalogue, folder, quirk_id, verdict, owner=owner, note=note,  # type: ignore[arg-type]
                                  ticket=ticket))
    finally:
        catalogue.close()
    if as_json:
        print_json([str(p) for p in written])
        return
    for quirk_id, path in zip(quirk_ids, written, strict=True):
        out.print(f"quirk {quirk_id}: {verdict} by {owner} → {path}", markup=False)


@rules_app.command("check", epilog=examples("shadow rules check", "shadow rules check --rules quirks/ --json"))
@handle_errors
def rules_check(config: Optional[Path] = ConfigOption, rules: Optional[Path] = RulesOption,
                as_json: bool = JsonOption) -> None:
    """Validate every rule file; exit 2 naming the file, line or key, and reason."""
    from rules.rulefile import load_rules

    folder = rules_folder(config, rules)
    found = load_rules(folder)
    summary = {"folder": str(folder), "files": len(found.files), "normalise": len(found.steps),
               "noise": len(found.noise), "verdicts": len(found.decisions)}
    if as_json:
        print_json(summary)
        return
    out.print(f"{folder}: {summary['files']} rule file(s) valid — {summary['normalise']} normalisation step(s), "
              f"{summary['noise']} noise path(s), {summary['verdicts']} verdict(s)")


@rules_app.command("test", epilog=examples(
    "shadow rules test rules/zones.toml",
    "shadow rules test rules/zones.toml --json"))
@handle_errors
def rules_test(rule_file: Path = typer.Argument(..., help="a new or changed rule file"),
               config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
               rules: Optional[Path] = RulesOption, as_json: bool = JsonOption) -> None:
    """What a rule file would do to the stored differences, before it is committed. Writes nothing."""
    from rules.catalogue import open_catalogue
    from rules.triage import test_rule_file

    catalogue = open_catalogue(store_url(config, store))
    try:
        report = test_rule_file(catalogue, rules_folder(config, rules), rule_file)
    finally:
        catalogue.close()
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"{rule_file}: re-compared {report.pairs:,} stored pairs; it would match {report.removed:,} of "
              f"{report.differences_before:,} stored differences", markup=False)
    for quirk_id, count in sorted(report.matched.items(), key=lambda kv: -kv[1]):
        closed = "  → closed" if quirk_id in report.closed else ""
        out.print(f"  quirk {quirk_id}: {count:,} difference(s){closed}")
    for quirk_id, verdict in report.verdicts.items():
        out.print(f"  quirk {quirk_id}: verdict would be {verdict}")
    for quirk_id, count in report.appeared.items():
        out.print(f"  [yellow]new quirk {quirk_id}: {count:,} difference(s)[/]")


@audit_app.command("list", epilog=examples(
    "shadow audit list --zone den",
    "shadow audit list --action cutover.flip --json"))
@handle_errors
def audit_list(config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
               subject: Optional[str] = typer.Option(None, "--subject", help="e.g. quirk:2946f7e84c51"),
               zone: Optional[str] = typer.Option(None, "--zone", help="a zone's flips, gates, guard decisions, "
                                                                      "windows (subject zone:ZONE)"),
               action: Optional[str] = typer.Option(None, "--action", help="e.g. cutover.flip, guard.window, verdict"),
               limit: int = typer.Option(200, "--limit", min=1, help="entries shown at most"),
               as_json: bool = JsonOption) -> None:
    """The audit log, oldest first: verdicts, plans, flips, refusals, rollbacks, guard decisions and windows."""
    from rules.catalogue import open_catalogue
    from shadow import audit

    if zone and subject:
        raise ShadowError("give --zone or --subject, not both")
    catalogue = open_catalogue(store_url(config, store))
    try:
        found = audit.entries(catalogue.engine, subject=f"zone:{zone}" if zone else subject, action=action,
                              limit=limit)
    finally:
        catalogue.close()
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    table = Table(title=f"audit log ({len(found)} entries)")
    for column in ("seq", "when", "who", "what", "subject", "detail"):
        table.add_column(column, overflow="fold")
    for e in found:
        detail = json.dumps(e.detail, ensure_ascii=False)
        table.add_row(str(e.seq), render_when(e.at), e.actor, e.action, e.subject,
                      detail if len(detail) <= 240 else detail[:239] + "… (--json for all)")
    out.print(table)


@audit_app.command("verify", epilog=examples("shadow audit verify", "shadow audit verify --store sqlite:///shadow.db"))
@handle_errors
def audit_verify(config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                 as_json: bool = JsonOption) -> None:
    """Check the hash chain: exit 1 naming the first entry that was edited or follows a deleted one."""
    from rules.catalogue import open_catalogue
    from shadow import audit

    catalogue = open_catalogue(store_url(config, store))
    try:
        intact, broken_at, checked = audit.verify(catalogue.engine)
    finally:
        catalogue.close()
    if as_json:
        print_json({"intact": intact, "broken_at": broken_at, "checked": checked})
    if not intact:
        raise ShadowError(f"the audit log was altered: entry {broken_at} does not hold ({checked} checked)",
                          hint="restore the catalogue from a backup; `shadow audit list` shows the entries")
    if not as_json:
        out.print(f"audit log intact: {checked} entries")
