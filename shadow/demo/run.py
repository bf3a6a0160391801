"""`shadow demo run`: the main job end to end on embedded defaults.

Starts the reference pair as two real services on free 127.0.0.1 ports,
writes a trace, replays it, compares the pairs into a SQLite catalogue, and
stops the services — whatever happens in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

from adapters.jsonl import JsonlPairs, read_commands
from reports.summary import Summary, summarise
from rules.catalogue import open_catalogue
from rules.noise import BASELINE_FILE, PATTERN_FILE
from shadow.baseline import run_baseline
from shadow.config import Config, load_config
from shadow.demo.trace import write_trace
from shadow.errors import TargetError
from shadow.model import Pair
from shadow.pipeline import CompareRun, compare_into
from shadow.replay import ReplayStats, replay

__all__ = ["DemoResult", "run_demo", "demo_config_text", "reference_pair", "reference_services", "free_port",
           "stop_processes"]

DEFAULT_PORTS = {"legacy": 8081, "new": 8082}


@dataclass(frozen=True)
class DemoResult:
    """Where the demo left its files, and what it found."""

    workdir: Path
    config: Config
    replay: ReplayStats
    compared: CompareRun
    summary: Summary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_config_text(legacy_port: int = 8081, new_port: int = 8082) -> str:
    """The shipped demo shadow.toml, pointed at the given ports."""
    text = resources.files("shadow.demo").joinpath("shadow.toml").read_text(encoding="utf-8")
    return (text.replace(f"127.0.0.1:{DEFAULT_PORTS['legacy']}", f"127.0.0.1:{legacy_port}")
                .replace(f"127.0.0.1:{DEFAULT_PORTS['new']}", f"127.0.0.1:{new_port}"))


def _wait_healthy(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TargetError(f"reference service for {url} exited with code {process.returncode} before answering",
                              hint="run `shadow demo serve legacy|new` by hand to see why")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TargetError(f"reference service at {url} did not answer /health in time")


@contextlib.contextmanager
def reference_services(workdir: Path, services: tuple[str, ...] = ("legacy", "new"), *,
                       ready_within: float = 20.0, kafka: str | None = None) -> Iterator[list[str]]:
    """Run reference services (`shadow demo serve legacy|new`) as subprocesses on free ports; yields their URLs.

    Each legacy gets its own fresh SQLite file, so two legacies make an A/A pair. With
    `kafka` (brokers HOST:PORT) the new engine takes its commands from Kafka too.
    """
    with reference_processes(workdir, services, ready_within=ready_within, kafka=kafka) as running:
        yield [url for url, _process in running]


@contextlib.contextmanager
def reference_processes(workdir: Path, services: tuple[str, ...] = ("legacy", "new"), *, ready_within: float = 20.0,
                        kafka: str | None = None) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """As `reference_services`, yielding (URL, process) pairs: for tests that kill a service on purpose."""
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for number, which in enumerate(services):
            port = free_port()
            argv = [sys.executable, "-m", "shadow", "demo", "serve", which, "--port", str(port)]
            if which == "legacy":
                database = workdir / ("legacy.sqlite" if number == 0 else f"legacy-{number}.sqlite")
                database.unlink(missing_ok=True)
                argv += ["--db", str(database)]
            elif kafka is not None:
                argv += ["--kafka", kafka]
            processes.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + ready_within
        for url, process in zip(urls, processes, strict=True):
            _wait_healthy(url, process, deadline)
        yield list(zip(urls, processes, strict=True))
    finally:
        stop_processes(processes)


def stop_processes(processes: list[subprocess.Popen[Any]], *, within: float = 10.0) -> None:
    """SIGTERM each process, wait for all, SIGKILL what is still running after `within` seconds."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def reference_pair(workdir: Path) -> Iterator[tuple[str, str]]:
    """The legacy and new reference services on free ports; yields (legacy URL, new URL)."""
    with reference_services(workdir, ("legacy", "new")) as (legacy, new):
        yield legacy, new


def run_demo(*, commands: int = 5000, seed: int = 7, workdir: Path = Path(".demo"), speed: float | None = None,
             baseline_sample: int = 300, on_step: Callable[[str], None] = lambda _s: None,
             on_pair: Callable[[Pair], None] | None = None) -> DemoResult:
    """Start the reference pair, make a trace, replay it, compare it; stop the services."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("shadow.db", "shadow.db-wal", "shadow.db-shm", "pairs.jsonl", "trace.jsonl",
                  f"rules/{PATTERN_FILE}", f"rules/{BASELINE_FILE}"):
        (workdir / stale).unlink(missing_ok=True)
    trace = workdir / "trace.jsonl"
    on_step(f"writing a {commands:,}-command trace (seed {seed}) to {trace}")
    write_trace(trace, commands, seed)
    on_step("starting the reference pair (legacy + new) and two spare legacies for the A/A baseline")
    with reference_services(workdir, ("legacy", "new", "legacy", "legacy")) as (legacy_url, new_url, aa_1, aa_2):
        legacy_port, new_port = (int(u.rsplit(":", 1)[1]) for u in (legacy_url, new_url))
        config_path = workdir / "shadow.toml"
        config_path.write_text(demo_config_text(legacy_port, new_port), encoding="utf-8")
        config = load_config(config_path)
        on_step(f"A/A baseline: {baseline_sample} commands to two fresh legacies; what differs there is noise")
        aa_config = config.model_copy(update={"targets": {**config.targets,
                                                          "legacy": config.targets["legacy"].model_copy(update={"url": aa_1})}})
        asyncio.run(run_baseline(read_commands(trace), aa_config, second_url=aa_2, sample=baseline_sample,
                                 rules_folder=config.store.rules))
        on_step(f"replaying against legacy {legacy_url} and new {new_url}")
        replayed = asyncio.run(replay(read_commands(trace), config, JsonlPairs(config.replay.pairs),
                                      speed=speed, on_pair=on_pair))
    on_step(f"comparing {replayed.pairs:,} pairs into {config.store.url}")
    catalogue = open_catalogue(config.store.url.reveal())
    try:
        compared = compare_into(JsonlPairs(config.replay.pairs), catalogue, rules_folder=config.store.rules)
        summary = summarise(catalogue)
    finally:
        catalogue.close()
    return DemoResult(workdir=workdir, config=config, replay=replayed, compared=compared, summary=summary)
