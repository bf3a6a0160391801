"""What every `shadow` command shares: the typer apps, consoles, options, errors, rendering.

Exit codes: 0 done, 1 failure, 2 bad config or input, 3 target unreachable,
4 store error. Errors are one red line with a hint; a traceback only with --debug.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text
from typer.core import DEFAULT_MARKUP_MODE

from shadow.config import DEFAULT_STORE_URL, Config, load_config
from shadow.errors import ConfigError, ShadowError
from shadow.model import ModelError
from shadow.secrets import install_log_filter, redact

app = typer.Typer(
    name="shadow",
    help="shadow-harness: run a new dispatch engine in shadow mode beside the legacy one, "
         "catalogue every behavioural difference, and cut over zone by zone.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
demo_app = typer.Typer(help="The reference dispatch pair: serve it, write traces, run the whole demo.",
                       no_args_is_help=True)
quirks_app = typer.Typer(help="The quirk catalogue: list, show and triage quirks.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: who decided what, when; verify that nobody edited it.",
                        no_args_is_help=True)
rules_app = typer.Typer(help="Rule files: check them, test a change against the stored pairs.", no_args_is_help=True)
cutover_app = typer.Typer(help="Cut over zone by zone: check the gates, plan a flip, execute it, roll it back, see the status.",
                          no_args_is_help=True)
spill_app = typer.Typer(help="Pairs waiting on disk while the catalogue store or the Kafka broker was down.",
                        no_args_is_help=True)
pairs_app = typer.Typer(help="Stored pairs: the entity audit (every command that touched a load, in order).",
                        no_args_is_help=True)
config_app = typer.Typer(help="Validate and show shadow.toml (secrets masked).", no_args_is_help=True)

# Piped output (make demo in CI, logs) would wrap at rich's 80-column default: use 160 for tables. Lines are
# never wrapped by us (soft wrap: the terminal wraps them), so a file path in a message stays whole to copy or grep.
out = Console(highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = typer.Option(None, "--config", "-c", help="shadow.toml to use (default: ./shadow.toml if present).",
                            envvar="SHADOW_CONFIG")
StoreOption = typer.Option(None, "--store", help="catalogue URL, overriding the config (e.g. sqlite:///shadow.db).",
                           envvar="SHADOW_STORE")
JsonOption = typer.Option(False, "--json", help="print machine-readable JSON on stdout.")
RulesOption = typer.Option(None, "--rules", help="rules folder, overriding the config's \\[store] rules.",
                           envvar="SHADOW_RULES")


def examples(*commands: str) -> str:
    """The epilog of a command's --help: one or two real examples, each a whole command line.

    Each example is a paragraph of its own, so that neither typer nor click joins it to the next; typer's
    rich help reads an epilog as markup, so [brackets] are escaped for it. An example longer than ~76
    characters wraps on an 80-column terminal: keep them short (tests/unit/test_cli_help.py checks)."""
    if DEFAULT_MARKUP_MODE == "rich":
        commands = tuple(escape(command) for command in commands)
    return "Examples:\n\n" + "\n\n".join(f"  $ {command}" for command in commands)


def handle_errors(fn: F) -> F:
    """Turn our errors into a red line and an exit code; a traceback only with --debug."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ShadowError, ModelError) as exc:
            if _state["debug"]:
                raise
            code = exc.exit_code if isinstance(exc, ShadowError) else 2
            err.print(Text(redact(f"error: {exc}"), style="red"))
            raise typer.Exit(code) from None
        except KeyboardInterrupt:
            err.print(Text("interrupted", style="yellow"))
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    """Machine-readable output for scripts, on stdout, secrets masked."""
    sys.stdout.write(redact(json.dumps(data, indent=2, default=str, ensure_ascii=False)) + "\n")


def load_cli_config(path: Optional[Path], *, required: bool = True) -> Config | None:
    """The config at --config, else ./shadow.toml; None when not required and absent."""
    if path is None:
        default = Path("shadow.toml")
        if default.exists():
            return load_config(default)
        if required:
            raise ConfigError("no shadow.toml in this folder", hint="pass --config PATH (the demo writes .demo/shadow.toml)")
        return None
    return load_config(path)


def store_url(config_path: Optional[Path], store: Optional[str]) -> str:
    """--store, else the config's [store] url, else the default SQLite file."""
    if store:
        return store
    config = load_cli_config(config_path, required=False)
    return config.store.url.reveal() if config is not None else DEFAULT_STORE_URL


def rules_folder(config_path: Optional[Path], rules: Optional[Path]) -> Path:
    """--rules, else the config's [store] rules, else ./rules."""
    if rules is not None:
        return rules
    config = load_cli_config(config_path, required=False)
    return config.store.rules if config is not None else Path("rules")


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="show tracebacks and debug logs."),
          version: bool = typer.Option(False, "--version", help="print the version and exit.")) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_filter()
    if not debug:
        # kafka-python logs every reconnect attempt; our own errors say what is wrong, once.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    if version:
        from importlib.metadata import version as dist_version

        out.print(f"shadow-harness {dist_version('shadow-harness')}")
        raise typer.Exit(0)


class _RateColumn(ProgressColumn):
    """Items per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "–/s", style="cyan")


def progress_bar(*, quiet: bool = False) -> Progress:
    """A progress bar with rate and ETA on stderr (disabled for --json output)."""
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    _RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=err, refresh_per_second=8, disable=quiet)


# -- rendering --------------------------------------------------------------------

def render_value(value: Any, width: int = 60) -> Text:
    """A payload value as JSON text, cut to width, never interpreted as markup."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return Text(redact(text))  # Text, not markup: payload values are untrusted


def render_sides(quirk: Any, example: Any, width: int = 60) -> tuple[Text, Text]:
    """Both values of an example; a side where the field or item does not exist says so."""
    absent = Text("(absent)", style="dim italic")
    legacy = absent if quirk.change == "added" else render_value(example.legacy, width)
    new = absent if quirk.change == "removed" else render_value(example.new, width)
    return legacy, new


def render_when(value: Any, *, short: bool = False) -> str:
    """A UTC time for a table cell."""
    if value is None:
        return "-"
    return value.strftime("%m-%d %H:%M:%S" if short else "%Y-%m-%d %H:%M:%S UTC")


def quirk_table(found: list[Any], *, title: str) -> None:
    """Quirks as a table: what differs, where, how often, an example and the verdict."""
    table = Table(title=title)
    table.add_column("id", style="bold", no_wrap=True, min_width=12)
    table.add_column("quirk", overflow="fold", min_width=16)
    table.add_column("commands", overflow="fold")
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("zones", overflow="fold")
    table.add_column("first / last seen", overflow="fold")
    table.add_column("example: legacy → new", overflow="fold", min_width=12)
    table.add_column("verdict", overflow="fold")
    styles = {"open": "yellow", "reproduce": "red", "retire": "green", "noise": "dim"}
    for q in found:
        example = Text("")
        if q.example is not None:
            legacy, new = render_sides(q, q.example, 30)
            example = legacy + Text(" → ", style="dim") + new
        seen = f"{render_when(q.first_seen, short=True)}\n{render_when(q.last_seen, short=True)}"
        what = Text(q.field, style="bold") + Text(f"\n{q.transition}", style="cyan")
        count = f"{q.differences:,}\n{q.pairs:,} pairs"
        table.add_row(q.id, what, "\n".join(q.commands), count, " ".join(sorted(q.zones)), seen, example,
                      Text(q.verdict, style=styles.get(q.verdict, "")))
    out.print(table)


def replay_line(stats: Any) -> None:
    """One line on what a replay did."""
    legacy, new = stats.statuses["legacy"], stats.statuses["new"]
    out.print(f"replayed {stats.pairs:,} commands in {stats.seconds:.1f}s ({stats.rate:,.0f}/s); "
              f"legacy ok/error/timeout {legacy['ok']}/{legacy['error']}/{legacy['timeout']}, "
              f"new {new['ok']}/{new['error']}/{new['timeout']}")


def compare_line(run: Any) -> None:
    """What a compare stored, what it proposed as noise, and the verdicts in force."""
    stored = run.stored
    out.print(f"compared {stored.pairs:,} pairs ({stored.replaced:,} already stored, replaced): "
              f"{stored.matched:,} matched, {stored.differences:,} differences")
    if run.noise_paths_added:
        out.print(f"proposed {run.noise_paths_added} noise path(s) in {run.noise_file} — review it like code")
    if run.verdicts:
        out.print("quirks by verdict: " + ", ".join(f"{v} {n}" for v, n in sorted(run.verdicts.items())))


def match_line(summary: Any) -> None:
    """One line with the overall match rate."""
    def shown(rate: float | None) -> str:
        return "n/a (no pairs)" if rate is None else f"{rate:.1%}"

    out.print(f"[bold]overall match rate: {shown(summary.overall.rate)}[/] ({summary.overall.matched:,} of "
              f"{summary.overall.pairs:,} pairs matched); {shown(summary.accepted.rate)} once noise and retired "
              f"quirks are accepted; {summary.quirks} quirk(s)")


