"""Proxy overhead: shadow proxy vs nginx's `mirror` on the same upstreams, in one run.

Two upstreams (legacy and new: small aiohttp services) run as processes of their
own; in front of them, `shadow proxy` (one process) and nginx (one worker, the
`mirror` directive; installed with apt-get when missing). A load generator sends
commands at a fixed rate (open loop) directly to legacy, through shadow and
through nginx, and prints the latency each adds at p50 and p99; then it drives
one shadow proxy as hard as it can and prints the mirrored commands per second.
Loopback only; every phase is bounded in time. Run: make bench.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from shadow.demo.run import free_port, stop_processes
from tests.servers import wait_http

UPSTREAM = """
import sys
from aiohttp import web
async def assign(request):
    await request.read()
    return web.json_response({"load_id": request.match_info["load_id"], "status": "assigned", "driver_id": "D-01"})
async def health(request):
    return web.json_response({"status": "ok"})
app = web.Application()
app.router.add_post("/loads/{load_id}/assign", assign)
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

NGINX = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream legacy {{ server 127.0.0.1:{legacy}; keepalive 64; }}
  upstream new {{ server 127.0.0.1:{new}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      mirror /mirror;
      mirror_request_body on;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://legacy;
    }}
    location = /mirror {{
      internal;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Shadow 1;
      proxy_pass http://new$request_uri;
    }}
  }}
}}
"""

SHADOW = """
[targets.legacy]
url = "http://127.0.0.1:{legacy}"
[targets.new]
url = "http://127.0.0.1:{new}"
[[routes]]
match = "POST /loads/{{load_id}}/assign"
command = "assign_load"
keys = ["load_id"]
[proxy]
listen = "127.0.0.1:{port}"
pairs = "pairs.jsonl"
queue = 10000
compare = {compare}
"""


def _nginx() -> str | None:
    found = shutil.which("nginx") or (Path("/usr/sbin/nginx") if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return str(found)
    print("installing nginx with apt-get (for the side-by-side figures) …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], env=env, check=False, capture_output=True)
    if not Path("/usr/sbin/nginx").exists():
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], env=env, check=False, capture_output=True)
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


async def _open_loop(url: str, rate: int, seconds: float) -> list[float]:
    """Send POSTs at a fixed rate for `seconds`; the latency of each, in ms."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int) -> None:
            started = time.perf_counter()
            async with session.post(f"{url}/loads/L-{i}/assign", data=b'{"zone": "chi"}',
                                    headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        loop = asyncio.get_running_loop()
        begin = loop.time()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, begin + i / rate - loop.time()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 2 else float("nan")


async def _closed_loop(url: str, seconds: float, concurrency: int = 64) -> int:
    done = 0
    stop = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker(w: int) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < stop:
                async with session.post(f"{url}/loads/W{w}-{i}/assign", data=b'{"zone": "chi"}') as resp:
                    await resp.read()
                done += 1
                i += 1
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done


WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/loads/W-" .. counter .. "/assign", {["Content-Type"] = "application/json"}, '{"zone": "chi"}')
end
"""


def _wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, capture_output=True)
    return shutil.which("wrk")


def _saturate(url: str, seconds: float, folder: Path) -> float:
    """Requests/s that one load generator gets through `url` with 64 connections: wrk (C) when
    available, so the generator does not take the proxy's CPU; else the Python client."""
    wrk = _wrk()
    if wrk is None:
        started = time.perf_counter()
        return asyncio.run(_closed_loop(url, seconds)) / (time.perf_counter() - started)
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT)
    result = subprocess.run([wrk, "-t1", "-c64", f"-d{int(seconds)}s", "-s", str(script), url],
                            capture_output=True, text=True, timeout=seconds + 30)
    for line in result.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"wrk printed no rate: {result.stdout} {result.stderr}")


def _mirrored(url: str) -> float:
    with urllib.request.urlopen(f"{url}/-/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("shadow_proxy_mirrored_total "):
                return float(line.split()[1])
    return 0.0


def main(seconds: float = 3.0) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        ports = {name: free_port() for name in ("legacy", "new", "shadow", "nginx")}
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for name in ("legacy", "new"):
                procs.append(subprocess.Popen([sys.executable, "-c", UPSTREAM, str(ports[name])]))
            (tmp / "shadow.toml").write_text(SHADOW.format(legacy=ports["legacy"], new=ports["new"], port=ports["shadow"],
                                                             compare=os.environ.get("BENCH_COMPARE", "false")))
            procs.append(subprocess.Popen([sys.executable, "-m", "shadow", "proxy", "-c", str(tmp / "shadow.toml")],
                                          stdout=subprocess.DEVNULL))
            nginx = _nginx()
            if nginx:
                (tmp / "nginx.conf").write_text(NGINX.format(dir=tmp, legacy=ports["legacy"], new=ports["new"],
                                                             port=ports["nginx"]))
                procs.append(subprocess.Popen([nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf")]))
            for name in ("legacy", "new"):
                wait_http(f"http://127.0.0.1:{ports[name]}/health")
            wait_http(f"http://127.0.0.1:{ports['shadow']}/-/health")
            if nginx:
                wait_http(f"http://127.0.0.1:{ports['nginx']}/health")
            targets = {"direct to legacy": ports["legacy"], "shadow proxy": ports["shadow"]}
            if nginx:
                targets["nginx mirror"] = ports["nginx"]
            print(f"proxy overhead, open loop, median of 3 runs of {seconds:g} s per rate, loopback, "
                  f"{os.cpu_count()} cores shared by all processes")
            for rate in (500, 2000):
                figures = {}
                runs: dict[str, list[tuple[float, float]]] = {label: [] for label in targets}
                for _ in range(3):  # interleaved, median of three: one scheduler hiccup is not a result
                    for label, port in targets.items():
                        asyncio.run(_open_loop(f"http://127.0.0.1:{port}", rate, 0.3))  # warm up connections
                        latencies = asyncio.run(_open_loop(f"http://127.0.0.1:{port}", rate, seconds))
                        runs[label].append((_pct(latencies, 50), _pct(latencies, 99)))
                for label, measured in runs.items():
                    figures[label] = (statistics.median(m[0] for m in measured), statistics.median(m[1] for m in measured))
                base = figures["direct to legacy"]
                print(f"  {rate:>5}/s  {'':<18} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10}")
                for label, (p50, p99) in figures.items():
                    added = "" if label.startswith("direct") else f"{p50 - base[0]:>10.2f} {p99 - base[1]:>10.2f}"
                    print(f"  {'':>7}{label:<18} {p50:>8.2f} {p99:>8.2f} {added}")
                if nginx:
                    shadow_p99 = figures["shadow proxy"][1] - base[1]
                    nginx_p99 = figures["nginx mirror"][1] - base[1]
                    ratio = shadow_p99 / nginx_p99 if nginx_p99 > 0 else float("nan")
                    print(f"  {'':>7}added p99, shadow / nginx: {ratio:.1f} x   (target: shadow added p99 <= 2 ms at 500/s)")
            shadow_url = f"http://127.0.0.1:{ports['shadow']}"
            before = _mirrored(shadow_url)
            started = time.perf_counter()
            rate = _saturate(shadow_url, seconds, tmp)
            elapsed = time.perf_counter() - started
            time.sleep(1.0)  # let queued mirrors finish
            mirrored = (_mirrored(shadow_url) - before) / elapsed
            print(f"  one shadow proxy, 64 connections: {rate:,.0f} commands/s answered, about {mirrored:,.0f} "
                  f"mirrored/s (target >= 3,000)")
            if nginx:
                rate = _saturate(f"http://127.0.0.1:{ports['nginx']}", seconds, tmp)
                print(f"  nginx mirror (1 worker), 64 connections: {rate:,.0f} commands/s answered")
            else:
                print("  nginx not available: install it (apt-get install nginx-light) for the side-by-side figures")
        finally:
            stop_processes(procs)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
