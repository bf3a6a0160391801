"""Serving small aiohttp applications on free 127.0.0.1 ports inside a test's event loop."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from shadow.demo.run import free_port


@contextlib.asynccontextmanager
async def serving(app: web.Application, port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields its base URL. In-flight requests get 0.5 s at the end."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def start_proxies(workdir: Path, config: Path, count: int, *, token: str,
                  own_pairs: bool = False) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """`count` real `shadow proxy` processes on free ports sharing one config (logs in workdir/proxy-N.log);
    returns them and their URLs once each answers /-/health. The caller stops them (stop_processes)."""
    processes, urls = [], []
    env = {**os.environ, "SHADOW_ADMIN_TOKEN": token}
    for i in range(count):
        port = free_port()
        argv = [sys.executable, "-m", "shadow", "proxy", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
        if own_pairs:
            argv += ["--pairs", str(workdir / f"pairs-{i}.jsonl")]
        processes.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                          stderr=open(workdir / f"proxy-{i}.log", "wb")))  # noqa: SIM115
        urls.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    for url in urls:
        while True:
            try:
                with urllib.request.urlopen(url + "/-/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    return processes, urls
