"""A proxy's presence in the store: it registers, heartbeats its route-table version, and hears flips pushed to it.

Store writes run in a thread (SQLAlchemy is synchronous): a slow or down store
delays a heartbeat, never a request. On Postgres the proxy also LISTENs for
flips, so a new route table is applied as soon as the controller says so.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from cutover import registry

log = logging.getLogger("shadow.presence")

__all__ = ["Presence", "BEAT_SECONDS"]

BEAT_SECONDS = 0.5


class Presence:
    """Registration, heartbeats and the push channel of one proxy process."""

    def __init__(self, store_url: str, address: str, version: Callable[[], str],
                 guard: Callable[[], dict[str, Any]], on_push: Callable[[str], None]) -> None:
        self.store_url, self.address = store_url, address
        self.instance = registry.new_instance_id()
        self._version, self._guard, self._on_push = version, guard, on_push
        self.engine: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Register (opening, creating or migrating the store in a thread), then beat and listen."""
        loop = asyncio.get_running_loop()
        try:
            self.engine = await loop.run_in_executor(None, self._open_and_register)
        except Exception as exc:  # a down store must not stop the proxy from serving
            log.error("proxy %s not registered (store %s): %s; it serves all the same, but a flip cannot wait for it",
                      self.instance, self.store_url.split("@")[-1], exc)
            return
        self._tasks.append(asyncio.create_task(self._beat()))
        if self.engine.dialect.name == "postgresql":
            self._tasks.append(asyncio.create_task(self._listen()))

    def _open_and_register(self) -> Any:
        from rules.catalogue import open_catalogue

        engine = open_catalogue(self.store_url).engine
        registry.register(engine, self.instance, self.address, self._version())
        return engine

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(BEAT_SECONDS)
            try:
                await loop.run_in_executor(None, registry.heartbeat, self.engine, self.instance, self._version(),
                                           self._guard())
            except Exception as exc:
                log.warning("heartbeat of %s not stored: %s", self.instance, exc)

    async def _listen(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {registry.CHANNEL}")
                    async for note in conn.notifies():
                        self._on_push(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("flip channel lost (%s); listening again in 1 s, the file watch goes on meanwhile", exc)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Stop beating; mark the proxy stopped so no flip waits for it."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.engine is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, registry.stopped, self.engine, self.instance)
            except Exception as exc:
                log.warning("could not mark %s stopped: %s", self.instance, exc)
            self.engine.dispose()
