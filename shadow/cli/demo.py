"""`shadow demo`: the reference dispatch pair, its traces, and the whole job end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from shadow.cli.common import (compare_line, demo_app, examples, handle_errors, match_line, out, progress_bar,
                               quirk_table, replay_line)
from shadow.errors import ShadowError


@demo_app.command("serve", epilog=examples(
    "shadow demo serve legacy --port 8081 --db legacy.db",
    "shadow demo serve new --kafka 127.0.0.1:9092"))
@handle_errors
def demo_serve(which: str = typer.Argument(..., help="legacy or new"),
               port: int = typer.Option(0, "--port", "-p", help="port (default 8081 for legacy, 8082 for new)"),
               host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
               db: Optional[Path] = typer.Option(None, "--db", help="legacy only: SQLite file for its state"),
               kafka: Optional[str] = typer.Option(None, "--kafka", help="new only: brokers HOST:PORT; commands then "
                                                   "come from a topic and answers go to another"),
               commands_topic: str = typer.Option("dispatch.commands", "--commands-topic",
                                                  help="new only, with --kafka: the topic commands come from"),
               outcomes_topic: str = typer.Option("dispatch.outcomes", "--outcomes-topic",
                                                  help="new only, with --kafka: the topic outcomes are answered on")) -> None:
    """Serve one side of the reference dispatch pair over HTTP (and, for new, Kafka) until stopped."""
    from shadow.config import KafkaTarget

    from shadow.demo.run import DEFAULT_PORTS
    from shadow.demo.serve import serve

    if which not in ("legacy", "new"):
        raise ShadowError(f"unknown service {which!r}", hint="use `shadow demo serve legacy` or `shadow demo serve new`")
    if kafka and which != "new":
        raise ShadowError("--kafka is for the new engine", hint="use `shadow demo serve new --kafka HOST:PORT`")
    bus = KafkaTarget(bootstrap=kafka, commands=commands_topic, outcomes=outcomes_topic) if kafka else None
    serve(which, host=host, port=port or DEFAULT_PORTS[which], db_path=str(db) if db else None,  # type: ignore[arg-type]
          kafka=bus)


@demo_app.command("trace", epilog=examples("shadow demo trace --commands 5000 --seed 7 -o trace.jsonl"))
@handle_errors
def demo_trace(commands: int = typer.Option(5000, "--commands", "-n", min=1, help="how many commands"),
               seed: int = typer.Option(7, "--seed", "-s", help="same seed, same trace"),
               output: Path = typer.Option(Path("trace.jsonl"), "--out", "-o", help="JSONL file to write")) -> None:
    """Write a realistic dispatch trace (zones, surge, retries): identical for the same seed."""
    from shadow.demo.trace import write_trace

    written = write_trace(output, commands, seed)
    out.print(f"wrote {written:,} commands to {output}")


@demo_app.command("run", epilog=examples(
    "shadow demo run --commands 5000 --workdir .demo",
    "shadow demo run --commands 500 --speed 1 --limit 10"))
@handle_errors
def demo_run(commands: int = typer.Option(5000, "--commands", "-n", min=1, help="how many commands the trace holds"),
             seed: int = typer.Option(7, "--seed", "-s", help="same seed, same trace"),
             workdir: Path = typer.Option(Path(".demo"), "--workdir", help="where the trace, pairs and catalogue go"),
             speed: str = typer.Option("max", "--speed", help="0.5, 1, 2 … or max"),
             limit: int = typer.Option(25, "--limit", help="quirks to show")) -> None:
    """Start the reference pair, replay a trace, compare, print the quirk table; stop the services."""
    from rules.catalogue import open_catalogue
    from shadow.demo.run import run_demo
    from shadow.replay import parse_speed

    factor = parse_speed(speed)
    with progress_bar() as progress:
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
        quirk_table(catalogue.quirks(limit=limit), title=f"Quirks: top {min(limit, total)} of {total} by count")
    finally:
        catalogue.close()
    replay_line(result.replay)
    compare_line(result.compared)
    match_line(result.summary)
    out.print(f"\nfiles in {result.workdir}: trace.jsonl, pairs.jsonl, shadow.db, shadow.toml, rules/")
    out.print(f"next: shadow quirks list --config {result.workdir / 'shadow.toml'}")
