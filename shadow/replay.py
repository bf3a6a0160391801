"""`shadow replay`: send a captured trace to both targets and write the pairs.

Commands go out in trace order at a speed factor of the recorded inter-arrival
gaps (or as fast as possible), bounded by a concurrency limit. Commands that
touch the same entity (same natural keys) run one after the other, in trace
order, so a cancel never overtakes the create it cancels.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from adapters.http import HttpStateReader, HttpTarget, client_session
from adapters.protocols import CommandTarget, PairSink, StateReader
from cutover.routing import primary_target
from shadow.config import Config
from shadow.errors import ShadowError
from shadow.model import Command, Outcome, Pair, Status, Target

__all__ = ["ReplayStats", "replay", "replay_commands", "parse_speed", "execute"]


@dataclass
class ReplayStats:
    """What a replay did."""

    commands: int = 0
    pairs: int = 0
    seconds: float = 0.0
    statuses: dict[str, dict[str, int]] = field(
        default_factory=lambda: {t.value: {s.value: 0 for s in Status} for t in Target}
    )

    @property
    def rate(self) -> float:
        """Commands per second over the whole run."""
        return self.pairs / self.seconds if self.seconds else 0.0


def parse_speed(text: str) -> float | None:
    """'0.5', '1', '2x' → a factor; 'max' → None (as fast as possible)."""
    value = text.strip().lower()
    if value in ("max", "inf", "fastest"):
        return None
    value = value.removesuffix("x")
    try:
        speed = float(value)
    except ValueError:
        raise ShadowError(f"--speed {text!r} is not a number or 'max'",
                          hint="use e.g. --speed 0.5, --speed 2 or --speed max") from None
    if not speed > 0:
        raise ShadowError(f"--speed {text!r} must be greater than 0", hint="use e.g. --speed 1 or --speed max")
    return speed


async def execute(target: CommandTarget, reader: StateReader | None, command: Command) -> Outcome:
    """Send a command to one target, then read back the state it left (never raises)."""
    outcome = await target.send(command)
    if reader is not None and outcome.status is not Status.TIMEOUT:
        try:
            outcome.state = await reader.read(command)
        except ShadowError as exc:
            outcome.error = f"{outcome.error}; {exc.message}" if outcome.error else exc.message
        except Exception as exc:  # a reader bug must not stop the replay
            outcome.error = f"state read-back failed: {type(exc).__name__}: {exc}"
    return outcome


def _entity(command: Command) -> tuple[str, str] | None:
    # The first natural key names the entity (load_id); further keys (a stop's seq)
    # are parts of it, so every command on one load stays in trace order.
    return next(iter(command.keys.items())) if command.keys else None


async def replay_commands(
    commands: Iterable[Command],
    targets: dict[Target, tuple[CommandTarget, StateReader | None]],
    sink: PairSink,
    *,
    primary: Callable[[Command], Target] = lambda _c: Target.LEGACY,
    speed: float | None = None,
    concurrency: int = 32,
    on_pair: Callable[[Pair], None] | None = None,
) -> ReplayStats:
    """Send each command to both targets and write one pair per command to the sink."""
    stats = ReplayStats()
    slots = asyncio.Semaphore(concurrency)
    last: dict[object, asyncio.Task[None]] = {}
    tasks: set[asyncio.Task[None]] = set()
    legacy, new = targets[Target.LEGACY], targets[Target.NEW]

    async def run(command: Command, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None:
                await asyncio.shield(before)
            legacy_outcome, new_outcome = await asyncio.gather(
                execute(legacy[0], legacy[1], command), execute(new[0], new[1], command)
            )
            pair = Pair(command=command, legacy=legacy_outcome, new=new_outcome, primary=primary(command))
            sink.write(pair)
            stats.pairs += 1
            stats.statuses["legacy"][legacy_outcome.status.value] += 1
            stats.statuses["new"][new_outcome.status.value] += 1
            if on_pair is not None:
                on_pair(pair)
        finally:
            slots.release()

    started = time.perf_counter()
    first_at = None
    for command in commands:
        if speed is not None:
            if first_at is None:
                first_at = command.received_at
            due = (command.received_at - first_at).total_seconds() / speed
            wait = due - (time.perf_counter() - started)
            if wait > 0:
                await asyncio.sleep(wait)
        await slots.acquire()
        entity = _entity(command)
        before = last.get(entity) if entity is not None else None
        if before is not None and before.done():
            before = None
        task = asyncio.create_task(run(command, before))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if entity is not None:
            last[entity] = task
            task.add_done_callback(lambda t, e=entity: last.get(e) is t and last.pop(e))
        stats.commands += 1
    if tasks:
        await asyncio.gather(*tasks)
    stats.seconds = time.perf_counter() - started
    return stats


async def replay(
    commands: Iterable[Command],
    config: Config,
    sink: PairSink,
    *,
    speed: float | None = None,
    concurrency: int | None = None,
    on_pair: Callable[[Pair], None] | None = None,
) -> ReplayStats:
    """Replay commands against the HTTP targets of a config; pairs go to the sink."""
    limit = concurrency or config.replay.concurrency
    async with client_session(limit) as session:
        targets: dict[Target, tuple[CommandTarget, StateReader | None]] = {}
        for target in Target:
            http = HttpTarget(target, config.targets[target.value], config.routes, session=session)
            targets[target] = (http, HttpStateReader(http, config.routes))
        try:
            return await replay_commands(commands, targets, sink, speed=speed, concurrency=limit, on_pair=on_pair,
                                         primary=lambda c: primary_target(config.routing, c))
        finally:
            sink.close()
