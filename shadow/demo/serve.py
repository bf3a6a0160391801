"""Run one of the reference dispatch services on 127.0.0.1 until SIGINT or SIGTERM."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from shadow.config import KafkaTarget
from shadow.demo.legacy import legacy_app
from shadow.demo.new import new_app

__all__ = ["serve"]


def serve(
    which: Literal["legacy", "new"],
    host: str = "127.0.0.1",
    port: int = 8081,
    db_path: str | None = None,
    kafka: KafkaTarget | None = None,
) -> None:
    """Serve the legacy or the new dispatch service; returns after SIGINT/SIGTERM."""
    if which == "legacy":
        app = legacy_app(db_path)
    elif which == "new":
        app = new_app(kafka)
    else:
        raise ValueError(f"unknown target {which!r}: expected 'legacy' or 'new'")
    print(f"{which} dispatch service listening on http://{host}:{port}", flush=True)
    # run_app turns SIGINT and SIGTERM into a graceful shutdown (cleanup hooks run, so the
    # legacy service closes its database and removes a temporary one). No access log: the
    # replay drives thousands of requests per second.
    web.run_app(app, host=host, port=port, print=None, access_log=None, handle_signals=True)
