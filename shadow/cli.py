"""The `shadow` command: a thin skin over the library (STYLE.md, 2).

Every command parses its arguments, calls one importable function, and
renders the result — a rich table for people, `--json` for scripts. Errors
are one red line with a hint and a documented exit code:
1 failure, 2 bad config or input, 3 target unreachable, 4 store error.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

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
    add_completion=False,
)
demo_app = typer.Typer(help="The reference dispatch pair: serve it, write traces, run the whole demo.",
                       no_args_is_help=True)
quirks_app = typer.Typer(help="The quirk catalogue: list quirks, show one with examples.", no_args_is_help=True)
config_app = typer.Typer(help="Validate and show shadow.toml (secrets masked).", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
app.add_typer(quirks_app, name="quirks")
app.add_typer(config_app, name="config")

# Piped output (make demo in CI, logs) would wrap at rich's 80-column default: use 160.
out = Console(highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
err = Console(stderr=True, highlight=False)
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = typer.Option(None, "--config", "-c", help="shadow.toml to use (default: ./shadow.toml if present).",
                            envvar="SHADOW_CONFIG")
StoreOption = typer.Option(None, "--store", help="catalogue URL, overriding the config (e.g. sqlite:///shadow.db).",
                           envvar="SHADOW_STORE")
JsonOption = typer.Option(False, "--json", help="print machine-readable JSON on stdout.")


def _errors(fn: F) -> F:
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


def _print_json(data: Any) -> None:
    sys.stdout.write(redact(json.dumps(data, indent=2, default=str, ensure_ascii=False)) + "\n")


def _config(path: Optional[Path], *, required: bool = True) -> Config | None:
    """The config at --config, else ./shadow.toml; None when not required and absent."""
    if path is None:
        default = Path("shadow.toml")
        if default.exists():
            return load_config(default)
        if required:
            raise ConfigError("no shadow.toml in this folder", hint="pass --config PATH (the demo writes .demo/shadow.toml)")
        return None
    return load_config(path)


def _store_url(config_path: Optional[Path], store: Optional[str]) -> str:
    if store:
        return store
    config = _config(config_path, required=False)
    return config.store.url.reveal() if config is not None else DEFAULT_STORE_URL


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="show tracebacks and debug logs."),
          version: bool = typer.Option(False, "--version", help="print the version and exit.")) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_filter()
    if version:
        from importlib.metadata import version as dist_version

        out.print(f"shadow-harness {dist_version('shadow-harness')}")
        raise typer.Exit(0)


# -- config -----------------------------------------------------------------------

@config_app.command("check")
@_errors
def config_check(config: Optional[Path] = ConfigOption, as_json: bool = JsonOption) -> None:
    """Validate shadow.toml; exit 2 with file, key and reason when it is wrong."""
    cfg = _config(config)
    assert cfg is not None
    data = cfg.model_dump(mode="json")
    if as_json:
        _print_json(data)
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


# -- demo -------------------------------------------------------------------------

@demo_app.command("serve")
@_errors
def demo_serve(which: str = typer.Argument(..., help="legacy or new"),
               port: int = typer.Option(0, "--port", "-p", help="port (default 8081 for legacy, 8082 for new)"),
               host: str = typer.Option("127.0.0.1", "--host"),
               db: Optional[Path] = typer.Option(None, "--db", help="legacy only: SQLite file for its state")) -> None:
    """Serve one side of the reference dispatch pair over HTTP until stopped."""
    from shadow.demo.run import DEFAULT_PORTS
    from shadow.demo.serve import serve

    if which not in ("legacy", "new"):
        raise ShadowError(f"unknown service {which!r}", hint="use `shadow demo serve legacy` or `shadow demo serve new`")
    serve(which, host=host, port=port or DEFAULT_PORTS[which], db_path=str(db) if db else None)  # type: ignore[arg-type]


@demo_app.command("trace")
@_errors
def demo_trace(commands: int = typer.Option(5000, "--commands", "-n", min=1, help="how many commands"),
               seed: int = typer.Option(7, "--seed", "-s", help="same seed, same trace"),
               output: Path = typer.Option(Path("trace.jsonl"), "--out", "-o", help="JSONL file to write")) -> None:
    """Write a realistic dispatch trace (zones, surge, retries): identical for the same seed."""
    from shadow.demo.trace import write_trace

    written = write_trace(output, commands, seed)
    out.print(f"wrote {written:,} commands to {output}")


@demo_app.command("run")
@_errors
def demo_run(commands: int = typer.Option(5000, "--commands", "-n", min=1),
             seed: int = typer.Option(7, "--seed", "-s"),
             workdir: Path = typer.Option(Path(".demo"), "--workdir", help="where the trace, pairs and catalogue go"),
             speed: str = typer.Option("max", "--speed", help="0.5, 1, 2 … or max"),
             limit: int = typer.Option(25, "--limit", help="quirks to show")) -> None:
    """Start the reference pair, replay a trace, compare, print the quirk table; stop the services."""
    from rules.catalogue import open_catalogue
    from shadow.demo.run import run_demo
    from shadow.replay import parse_speed

    factor = parse_speed(speed)
    with _progress() as progress:
        task = progress.add_task("replaying", total=commands, visible=False)

        def step(message: str) -> None:
            progress.console.print(f"[bold cyan]›[/] {message}")
            if message.startswith("replaying"):
                progress.update(task, visible=True)

        result = run_demo(commands=commands, seed=seed, workdir=workdir, speed=factor, on_step=step,
                          on_pair=lambda _p: progress.advance(task))
    catalogue = open_catalogue(result.config.store.url.reveal())
    try:
        total = catalogue.count_quirks()
        _quirk_table(catalogue.quirks(limit=limit), title=f"Quirks: top {min(limit, total)} of {total} by count")
    finally:
        catalogue.close()
    _replay_line(result.replay)
    _match_line(result.summary)
    out.print(f"\nfiles in {result.workdir}: trace.jsonl, pairs.jsonl, shadow.db, shadow.toml")
    out.print(f"next: shadow quirks list --config {result.workdir / 'shadow.toml'}")


# -- replay and compare -----------------------------------------------------------

class _RateColumn(ProgressColumn):
    """Items per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "–/s", style="cyan")


def _progress(*, quiet: bool = False) -> Progress:
    """A progress bar with rate and ETA on stderr (disabled for --json output)."""
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    _RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=err, refresh_per_second=8, disable=quiet)


@app.command("replay")
@_errors
def replay_cmd(trace: Path = typer.Argument(..., help="JSONL trace of commands (e.g. from `shadow demo trace`)"),
               config: Optional[Path] = ConfigOption,
               speed: str = typer.Option("1", "--speed", help="0.5, 1, 2 … keeps inter-arrival gaps scaled; max = no gaps"),
               output: Optional[Path] = typer.Option(None, "--out", "-o", help="pairs JSONL (default from config)"),
               concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1),
               as_json: bool = JsonOption) -> None:
    """Send each command of a trace to both targets and write the pairs."""
    from adapters.jsonl import JsonlPairs, read_commands
    from shadow.replay import parse_speed, replay

    cfg = _config(config)
    assert cfg is not None
    factor = parse_speed(speed)
    commands = list(read_commands(trace))  # validate the whole trace before sending anything
    sink = JsonlPairs(output or cfg.replay.pairs)
    with _progress(quiet=as_json) as progress:
        task = progress.add_task("replaying", total=len(commands))
        stats = asyncio.run(replay(commands, cfg, sink, speed=factor, concurrency=concurrency,
                                   on_pair=lambda _p: progress.advance(task)))
    if as_json:
        _print_json({"commands": stats.commands, "pairs": stats.pairs, "seconds": stats.seconds,
                     "rate": stats.rate, "statuses": stats.statuses, "out": str(sink.path)})
        return
    _replay_line(stats)
    out.print(f"pairs written to {sink.path}")


@app.command("compare")
@_errors
def compare_cmd(pairs: list[Path] = typer.Argument(..., help="pairs JSONL file(s) from `shadow replay`"),
                config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                as_json: bool = JsonOption) -> None:
    """Diff each pair and store results and quirks in the catalogue (idempotent on the dispatch token)."""
    from adapters.jsonl import JsonlPairs
    from reports.summary import summarise
    from rules.catalogue import IngestStats, open_catalogue
    from shadow.pipeline import compare_into

    catalogue = open_catalogue(_store_url(config, store))
    try:
        total = IngestStats()
        with _progress(quiet=as_json) as progress:
            task = progress.add_task("comparing", total=None)
            for path in pairs:
                stats = compare_into(JsonlPairs(path), catalogue, on_result=lambda _r: progress.advance(task))
                for name in ("pairs", "replaced", "matched", "differences"):
                    setattr(total, name, getattr(total, name) + getattr(stats, name))
        summary = summarise(catalogue)
    finally:
        catalogue.close()
    if as_json:
        _print_json({"stored": total.__dict__, "catalogue": catalogue.url, **summary.to_dict()})
        return
    out.print(f"compared {total.pairs:,} pairs ({total.replaced:,} already stored, replaced): "
              f"{total.matched:,} matched, {total.differences:,} differences → {catalogue.url}")
    _match_line(summary)


# -- quirks -----------------------------------------------------------------------

@quirks_app.command("list")
@_errors
def quirks_list(config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                verdict: Optional[str] = typer.Option(None, "--verdict", help="open, reproduce, retire or noise"),
                command: Optional[str] = typer.Option(None, "--command", help="only this command kind"),
                limit: int = typer.Option(100, "--limit", min=1), as_json: bool = JsonOption) -> None:
    """The quirks in the catalogue, most frequent first."""
    from rules.catalogue import VERDICTS, open_catalogue

    if verdict is not None and verdict not in VERDICTS:
        raise ShadowError(f"--verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    catalogue = open_catalogue(_store_url(config, store))
    try:
        found = catalogue.quirks(verdict=verdict, command=command, limit=limit)
        total = catalogue.count_quirks(verdict=verdict, command=command)
    finally:
        catalogue.close()
    if as_json:
        _print_json([q.to_dict() for q in found])
        return
    shown = f"{total} quirk(s)" if total == len(found) else f"{len(found)} of {total} quirks (--limit to see more)"
    _quirk_table(found, title=f"{shown} in {catalogue.url}")


@quirks_app.command("show")
@_errors
def quirks_show(quirk_id: str = typer.Argument(..., help="quirk id (a unique prefix will do)"),
                config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                examples: int = typer.Option(5, "--examples", min=1), as_json: bool = JsonOption) -> None:
    """One quirk: what it is, how often, and side-by-side example values."""
    from rules.catalogue import open_catalogue

    catalogue = open_catalogue(_store_url(config, store))
    try:
        quirk = catalogue.quirk(quirk_id, examples=examples)
    finally:
        catalogue.close()
    if as_json:
        _print_json(quirk.to_dict())
        return
    out.print(f"[bold]quirk {quirk.id}[/]  verdict [bold]{quirk.verdict}[/]")
    out.print(f"  command     {quirk.command}")
    out.print(f"  path        {quirk.pattern}   ({quirk.change})")
    out.print(f"  transition  {quirk.transition}: {quirk.description}")
    out.print(f"  seen        {quirk.differences:,} difference(s) in {quirk.pairs:,} pair(s), "
              f"{_when(quirk.first_seen)} … {_when(quirk.last_seen)}")
    table = Table(title="examples", show_lines=True)
    table.add_column("dispatch token", overflow="fold")
    table.add_column("path", overflow="fold")
    table.add_column("legacy", style="red", overflow="fold")
    table.add_column("new", style="green", overflow="fold")
    for example in quirk.examples:
        legacy, new = _sides(quirk, example)
        table.add_row(example.token, example.path, legacy, new)
    out.print(table)


# -- rendering --------------------------------------------------------------------

def _value(value: Any, width: int = 60) -> Text:
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return Text(redact(text))  # Text, not markup: payload values are untrusted


def _sides(quirk: Any, example: Any, width: int = 60) -> tuple[Text, Text]:
    """Both values of an example; a side where the field or item does not exist says so."""
    absent = Text("(absent)", style="dim italic")
    legacy = absent if quirk.change == "added" else _value(example.legacy, width)
    new = absent if quirk.change == "removed" else _value(example.new, width)
    return legacy, new


def _when(value: Any, *, short: bool = False) -> str:
    if value is None:
        return "-"
    return value.strftime("%m-%d %H:%M:%S" if short else "%Y-%m-%d %H:%M:%S UTC")


def _quirk_table(found: list[Any], *, title: str) -> None:
    table = Table(title=title)
    table.add_column("id", style="bold", no_wrap=True, min_width=12)
    table.add_column("command", overflow="fold")
    table.add_column("path", overflow="fold", min_width=10)
    table.add_column("transition", overflow="fold")
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("first / last seen", overflow="fold")
    table.add_column("example: legacy → new", overflow="fold", min_width=12)
    table.add_column("verdict", overflow="fold")
    for q in found:
        example = Text("")
        if q.example is not None:
            legacy, new = _sides(q, q.example, 30)
            example = legacy + Text(" → ", style="dim") + new
        seen = f"{_when(q.first_seen, short=True)}\n{_when(q.last_seen, short=True)}"
        table.add_row(q.id, q.command, q.pattern, q.transition, f"{q.differences:,}", seen, example, q.verdict)
    out.print(table)


def _replay_line(stats: Any) -> None:
    legacy, new = stats.statuses["legacy"], stats.statuses["new"]
    out.print(f"replayed {stats.pairs:,} commands in {stats.seconds:.1f}s ({stats.rate:,.0f}/s); "
              f"legacy ok/error/timeout {legacy['ok']}/{legacy['error']}/{legacy['timeout']}, "
              f"new {new['ok']}/{new['error']}/{new['timeout']}")


def _match_line(summary: Any) -> None:
    rate = summary.overall.rate
    shown = "n/a (no pairs)" if rate is None else f"{rate:.1%}"
    out.print(f"[bold]overall match rate: {shown}[/] ({summary.overall.matched:,} of {summary.overall.pairs:,} "
              f"pairs matched); {summary.quirks} quirk(s)")


def main() -> None:
    """Entry point of the `shadow` console script."""
    app(prog_name="shadow")


if __name__ == "__main__":
    main()
