"""Serving small aiohttp applications on free 127.0.0.1 ports inside a test's event loop."""

from __future__ import annotations

import contextlib
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
