"""Eventual consistency: read the new side until it shows what legacy shows, stops changing, or time is up.

The new engine applies a command asynchronously (over Kafka); reading its state
right after the command may be early. A pair read too early must not be a
mismatch; one still different after the deadline is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable

from adapters.protocols import StateReader
from rules.canonical import canonical_bytes
from shadow.model import Command

__all__ = ["Settled", "read_settled"]


@dataclass(frozen=True)
class Settled:
    """The state read last, how long it took, and whether it came to equal the reference."""

    state: Any
    settle_ms: float
    converged: bool
    reads: int


async def read_settled(reader: StateReader, command: Command, reference: Any, *, deadline: float, quiet: float,
                       interval: float, equal: Callable[[Any, Any], bool]) -> Settled:
    """Read until `equal(reference, state)`, or unchanged for `quiet` seconds, or `deadline` seconds passed."""
    started = time.monotonic()
    state = await reader.read(command)
    reads, changed_at, last = 1, started, canonical_bytes(state)
    while True:
        now = time.monotonic()
        if equal(reference, state):
            return Settled(state, (now - started) * 1000, True, reads)
        if now - started >= deadline or now - changed_at >= quiet:
            return Settled(state, (now - started) * 1000, False, reads)
        await asyncio.sleep(min(interval, max(0.0, started + deadline - now)))
        state = await reader.read(command)
        reads += 1
        current = canonical_bytes(state)
        if current != last:
            changed_at, last = time.monotonic(), current
