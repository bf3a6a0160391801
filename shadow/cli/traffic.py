"""`shadow replay`, `shadow compare`, `shadow baseline`: traffic in, pairs and quirks out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from shadow.cli.common import (ConfigOption, JsonOption, RulesOption, StoreOption, app, compare_line, err, examples,
                               handle_errors, load_cli_config, match_line, out, print_json, progress_bar, replay_line,
                               rules_folder, store_url)
from shadow.errors import ShadowError

if TYPE_CHECKING:
    from shadow.config import Config


@app.command("replay", epilog=examples(
    "shadow replay trace.jsonl --speed max",
    "shadow replay trace.jsonl --speed 2 --to-kafka"))
@handle_errors
def replay_cmd(trace: Path = typer.Argument(..., help="JSONL trace of commands (e.g. from `shadow demo trace`)"),
               config: Optional[Path] = ConfigOption,
               speed: str = typer.Option("1", "--speed", help="0.5, 1, 2 … keeps inter-arrival gaps scaled; max = none"),
               output: Optional[Path] = typer.Option(None, "--out", "-o", help="pairs JSONL (default from config)"),
               concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1,
                                                         help="commands in flight at once (default: \\[replay] concurrency)"),
               to_kafka: bool = typer.Option(False, "--to-kafka", help="publish pairs to the config's kafka.pairs topic"),
               as_json: bool = JsonOption) -> None:
    """Send each command of a trace to both targets and write the pairs."""
    from adapters.jsonl import JsonlPairs, read_commands
    from shadow.replay import parse_speed, replay

    cfg = load_cli_config(config)
    assert cfg is not None
    factor = parse_speed(speed)
    commands = list(read_commands(trace))  # validate the whole trace before sending anything
    if to_kafka:
        from adapters.kafka import KafkaPairs

        if not cfg.kafka.bootstrap:
            raise ShadowError("--to-kafka needs [kafka] bootstrap = \"HOST:PORT\" in the config")
        sink: Any = KafkaPairs(cfg.kafka.bootstrap, cfg.kafka.pairs)
    else:
        sink = JsonlPairs(output or cfg.replay.pairs)
    with progress_bar(quiet=as_json) as progress:
        task = progress.add_task("replaying", total=len(commands))
        stats = asyncio.run(replay(commands, cfg, sink, speed=factor, concurrency=concurrency,
                                   on_pair=lambda _p: progress.advance(task)))
    if as_json:
        print_json({"commands": stats.commands, "pairs": stats.pairs, "seconds": stats.seconds,
                    "rate": stats.rate, "statuses": stats.statuses,
                    "out": cfg.kafka.pairs if to_kafka else str(sink.path)})
        return
    replay_line(stats)
    out.print(f"pairs published to {cfg.kafka.pairs}" if to_kafka else f"pairs written to {sink.path}")


@app.command("compare", epilog=examples(
    "shadow compare pairs.jsonl",
    "shadow compare --from-kafka shadow.pairs --metrics-listen 9464"))
@handle_errors
def compare_cmd(pairs: Optional[list[Path]] = typer.Argument(None, help="pairs JSONL file(s) from `shadow replay`"),
                config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption,
                rules: Optional[Path] = RulesOption,
                recompute: bool = typer.Option(False, "--recompute",
                                               help="re-compare every stored pair with the rules as they are now"),
                no_noise: bool = typer.Option(False, "--no-noise", help="do not propose noise paths"),
                from_kafka: Optional[str] = typer.Option(None, "--from-kafka",
                                                         help="run as a comparator worker on this pairs topic"),
                group: Optional[str] = typer.Option(None, "--group", help="consumer group (default: the config's kafka.group)"),
                idle_exit: Optional[float] = typer.Option(None, "--idle-exit", help="stop after this many idle seconds"),
                metrics_listen: Optional[str] = typer.Option(
                    None, "--metrics-listen", metavar="[HOST:]PORT",
                    help="worker: serve Prometheus /metrics here (a bare port: 127.0.0.1; default: the config's "
                         "kafka.metrics_listen, else none)"),
                as_json: bool = JsonOption) -> None:
    """Diff each pair with the rules and store results and quirks (idempotent on the dispatch token)."""
    from adapters.jsonl import JsonlPairs
    from reports.summary import summarise
    from rules.catalogue import open_catalogue
    from shadow.pipeline import CompareRun, compare_into, recompute as recompute_all

    if from_kafka:
        _comparator_worker(config, store, rules, from_kafka, group, idle_exit, metrics_listen, as_json)
        return
    if metrics_listen:
        raise ShadowError("--metrics-listen is for a comparator worker", hint="add --from-kafka TOPIC")
    if not pairs and not recompute:
        raise ShadowError("nothing to compare",
                          hint="give pairs JSONL file(s), --recompute for the stored pairs, or --from-kafka TOPIC")
    folder = rules_folder(config, rules)
    catalogue = open_catalogue(store_url(config, store))
    try:
        run = CompareRun()
        with progress_bar(quiet=as_json) as progress:
            task = progress.add_task("comparing", total=None)
            advance = lambda _r: progress.advance(task)  # noqa: E731
            if recompute:
                run = recompute_all(catalogue, rules_folder=folder, detect_noise=not no_noise, on_result=advance)
            for path in pairs or []:
                step = compare_into(JsonlPairs(path), catalogue, rules_folder=folder, detect_noise=not no_noise,
                                    on_result=advance)
                run.stored.add(step.stored)
                run.noise_file = step.noise_file or run.noise_file
                run.noise_paths_added += step.noise_paths_added
                run.verdicts = step.verdicts
        summary = summarise(catalogue)
    finally:
        catalogue.close()
    if as_json:
        print_json({"stored": run.stored.__dict__, "noise_file": str(run.noise_file) if run.noise_file else None,
                    "noise_paths_added": run.noise_paths_added, "catalogue": catalogue.url, **summary.to_dict()})
        return
    compare_line(run)
    match_line(summary)


def _comparator_worker(config: Optional[Path], store: Optional[str], rules: Optional[Path], topic: str,
                       group: Optional[str], idle_exit: Optional[float], metrics_listen: Optional[str],
                       as_json: bool) -> None:
    from rules.catalogue import open_catalogue
    from shadow.metrics import WorkerMetrics, serve_metrics
    from shadow.workers import run_comparator_worker

    cfg = load_cli_config(config, required=False)
    bootstrap = cfg.kafka.bootstrap if cfg is not None else None
    if not bootstrap:
        raise ShadowError("--from-kafka needs [kafka] bootstrap = \"HOST:PORT\" in the config")
    assert cfg is not None
    group = group or cfg.kafka.group
    metrics_listen = metrics_listen or cfg.kafka.metrics_listen
    catalogue = open_catalogue(store_url(config, store))
    stop_metrics = None
    try:
        metrics = WorkerMetrics(topic, group=group, catalogue=catalogue.url)
        served = ""
        if metrics_listen:
            address, stop_metrics = serve_metrics(metrics.registry, metrics_listen)
            served = f"; metrics on http://{address}/metrics"
        err.print(f"comparator worker: {topic} → {catalogue.url}, group {group}{served}")
        stats = run_comparator_worker(bootstrap, topic, group, catalogue, rules_folder=rules_folder(config, rules),
                                      idle_exit=idle_exit, metrics=metrics)
    finally:
        if stop_metrics is not None:
            stop_metrics()
        catalogue.close()
    if as_json:
        print_json(stats.__dict__)
        return
    out.print(f"worker stopped: {stats.records:,} records in {stats.batches:,} batches, {stats.stored:,} pairs stored, "
              f"{stats.retried:,} set aside for retry, {stats.dead:,} dead-lettered")


@app.command("baseline", epilog=examples("shadow baseline trace.jsonl --second http://127.0.0.1:8083 --sample 500"))
@handle_errors
def baseline_cmd(trace: Path = typer.Argument(..., help="JSONL trace to sample commands from"),
                 second: str = typer.Option(..., "--second", help="URL of a second legacy instance (fresh state)"),
                 sample: int = typer.Option(500, "--sample", min=1, help="commands to send"),
                 config: Optional[Path] = ConfigOption, rules: Optional[Path] = RulesOption,
                 as_json: bool = JsonOption) -> None:
    """A/A: send a sample to legacy and a second legacy; paths that differ there become noise rules."""
    from adapters.jsonl import read_commands
    from shadow.baseline import run_baseline

    cfg = load_cli_config(config)
    assert cfg is not None
    result = asyncio.run(run_baseline(read_commands(trace), cfg, second_url=second, sample=sample,
                                      rules_folder=rules_folder(config, rules)))
    if as_json:
        print_json({"pairs": result.pairs, "noisy": result.noisy, "file": str(result.file) if result.file else None,
                    "added": result.added})
        return
    out.print(f"A/A baseline: {result.pairs:,} commands to legacy and {second}")
    for path, count in sorted(result.noisy.items()):
        out.print(f"  {path}: differed in {count:,} pair(s)")
    if result.file:
        out.print(f"{result.added} new noise path(s) written to {result.file} — review it like code")
    else:
        out.print("no path differed: legacy is deterministic on this sample")


def _pairs_destination(cfg: "Config") -> str:
    """Where the proxy's pairs go, as its banner says it (passwords masked)."""
    if cfg.proxy.sink == "kafka":
        return f"Kafka topic {cfg.kafka.pairs} on {cfg.kafka.bootstrap}"
    if cfg.proxy.sink == "catalogue":
        return f"the catalogue at {cfg.store.url}"  # a Dsn: shown masked
    return str(cfg.proxy.pairs)


@app.command("proxy", epilog=examples(
    "shadow proxy --listen 127.0.0.1:8080 --capture captured.jsonl",
    "shadow proxy -c shadow.toml --listen 127.0.0.1:8090 --pairs proxy-2.jsonl"))
@handle_errors
def proxy_cmd(config: Optional[Path] = ConfigOption,
              listen: Optional[str] = typer.Option(None, "--listen", help="HOST:PORT (default from the config's proxy.listen)"),
              capture: Optional[Path] = typer.Option(None, "--capture", help="also record commands here, for replay"),
              pairs: Optional[Path] = typer.Option(None, "--pairs", help="JSONL pairs file, overriding \\[proxy] pairs "
                                                                        "(one per proxy when several share a config)")) -> None:
    """The dual-write proxy: primary answers the caller, commands are mirrored, pairs recorded."""
    import os

    from aiohttp import web

    from shadow.config import ProxyConfig
    from shadow.proxy import Proxy
    from shadow.secrets import register_secret

    cfg = load_cli_config(config)
    assert cfg is not None
    overrides = {k: v for k, v in (("listen", listen), ("pairs", pairs)) if v is not None}
    if overrides:
        cfg = cfg.model_copy(update={"proxy": ProxyConfig.model_validate({**cfg.proxy.model_dump(), **overrides})})
    token = os.environ.get(cfg.proxy.admin_token_env) or None  # the CLI is the edge: the only place env is read
    register_secret(token)
    proxy = Proxy(cfg, admin_token=token, capture=capture, own_process=True)
    host, port = cfg.proxy.listen.rsplit(":", 1)
    out.print(f"shadow proxy on http://{host}:{port} — legacy {cfg.targets['legacy'].url}, new "
              f"{cfg.targets['new'].url}; route table {proxy.table.version}; pairs → {_pairs_destination(cfg)}"
              + ("; admin endpoints off" if not cfg.proxy.admin else
                 "" if token else f"; admin endpoints closed (set {cfg.proxy.admin_token_env})"))
    web.run_app(proxy.app(), host=host, port=int(port), print=None, shutdown_timeout=cfg.proxy.drain_seconds + 1)
