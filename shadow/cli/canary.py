"""`shadow cutover run` and `shadow cutover canary-status`: canary plans, zone after zone, each step soaked on an SLA."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from shadow.cli import common
from shadow.cli.common import ConfigOption, JsonOption, StoreOption, cutover_app, err, examples, handle_errors, out, print_json
from shadow.cli.cutover import AsOption, _controller

_STYLES = {"start": "bold", "resume": "bold", "skip": "dim", "flip": "green", "soak": "bold", "passed": "green",
           "breach": "bold red", "rollback": "yellow", "halt": "bold red", "done": "bold green"}


class _View:
    """Renders a run's events: a line per decision, a progress bar per soak with the SLA figures."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: Any = None

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if event.kind == "check":
            if self.progress is not None:
                self.progress.update(self.task, completed=event.elapsed_s,
                                     description=f"{event.zone} {event.mode}: {event.message}")
            return
        self._stop()
        out.print(Text(event.message, style=_STYLES.get(event.kind, "")))
        if event.kind == "soak":
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     TextColumn("{task.completed:.0f}/{task.total:.0f} s"), console=err,
                                     transient=True)
            self.task = self.progress.add_task(f"{event.zone} {event.mode}", total=event.soak_s,
                                               completed=event.elapsed_s or 0)
            self.progress.start()

    def close(self) -> None:
        """Stop a soak's progress bar left running (an error ended the run)."""
        self._stop()


@cutover_app.command("run", epilog=examples(
    "SHADOW_ADMIN_TOKEN=dana:… shadow cutover run canary.toml",
    "shadow cutover run canary.toml --resume-after-halt --json"))
@handle_errors
def cutover_run(plan_file: Path = typer.Argument(..., help="the canary plan (TOML): zones, steps, soak time and SLA"),
                resume_after_halt: bool = typer.Option(False, "--resume-after-halt",
                                                       help="run a halted plan again, from the halted zone's first "
                                                            "step"),
                config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                as_name: Optional[str] = AsOption, as_json: bool = JsonOption) -> None:
    """Move zones one after another through the plan's modes, soaking each step on the SLA; on a breach roll
    that zone back and halt. Progress is kept in the catalogue: run it again to resume. Exit 0 done, 1 halted.
    """
    from cutover.canary import CanaryRun, load_plan

    plan = load_plan(plan_file)
    controller = _controller(config, store, as_name)
    view = _View(quiet=as_json)
    try:
        outcome = CanaryRun(plan, controller, on_event=view, plan_file=str(plan_file)).run(
            resume_after_halt=resume_after_halt)
    finally:
        view.close()
        controller.catalogue.close()
    if as_json:
        print_json(outcome.to_dict())
    elif outcome.status != "done":
        out.print(Text(f"halted at step {outcome.step + 1} of {outcome.total}. Once the cause is fixed: "
                       f"shadow cutover run {plan_file} --resume-after-halt", style="yellow"))
    if outcome.status != "done":
        raise typer.Exit(1)


@cutover_app.command("canary-status", epilog=examples(
    "shadow cutover canary-status",
    "shadow cutover canary-status canary.toml --json"))
@handle_errors
def cutover_canary_status(plan_file: Optional[Path] = typer.Argument(None, help="a canary plan (else every plan "
                                                                                 "that ran)"),
                          config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                          as_json: bool = JsonOption) -> None:
    """Where canary plans stand: status, step, zone, soak and the last SLA figures; with a plan, its history."""
    from cutover.canary import all_progress, load_plan, progress_of
    from rules.catalogue import open_catalogue

    catalogue = open_catalogue(common.store_url(config, store))
    try:
        if plan_file is not None:
            plan = load_plan(plan_file)
            found = progress_of(catalogue.engine, plan.id)
            progress = [found] if found is not None else []
        else:
            progress = all_progress(catalogue.engine)
    finally:
        catalogue.close()
    if as_json:
        print_json([p.to_dict() for p in progress])
        return
    if not progress:
        out.print(Text("this plan has not run" if plan_file else "no canary plan has run", style="dim"))
        return
    table = Table(title="canary plans", title_justify="left")
    for column in ("plan", "file", "status", "step", "zone", "mode", "phase", "last check", "updated"):
        table.add_column(column, overflow="fold")
    styles = {"running": "yellow", "halted": "bold red", "done": "green"}
    for p in progress:
        figures = (p.last_check or {}).get("figures")
        check = "-" if not p.last_check else \
            f"{min(p.last_check['elapsed_s'], p.last_check['soak_s']):.1f}/{p.last_check['soak_s']:g} s" + \
            (f", {figures['pairs']:,} pairs" if figures else "")
        step = f"{min(p.step + 1, p.total)}/{p.total}"  # the step under way (1-based), or the last once done
        table.add_row(p.plan, p.plan_file, Text(p.status, style=styles.get(p.status, "")), step, p.zone or "-",
                      p.mode or "-", p.phase, check, common.render_when(p.updated_at))
    out.print(table)
    if plan_file is not None:
        p = progress[0]
        if p.reason:
            out.print(Text(f"halted: {p.reason}", style="red"))
        history = Table(title="history", title_justify="left")
        for column in ("at", "event", "zone", "mode", "detail"):
            history.add_column(column, overflow="fold")
        for h in p.history:
            history.add_row(h["at"][:19].replace("T", " "), h["event"], h.get("zone") or "-", h.get("mode") or "-",
                            Text(str(h.get("detail") or h.get("reason") or "")))
        out.print(history)
