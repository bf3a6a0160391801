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
from typing import Any, Callable, Iterable

import orjson

from adapters.http import HttpStateReader, HttpTarget, client_session
from adapters.kafka import KafkaTarget
from adapters.protocols import CommandTarget, PairSink, StateReader
from adapters.sql import SqlStateReader
from cutover.routing import primary_target
from rules.canonical import canonical_bytes
from rules.normalise import Normaliser
from rules.rulefile import load_rules
from shadow.config import Config, RouteState
from shadow.settle import read_settled
from shadow.errors import ShadowError
from shadow.model import Command, Outcome, Pair, Status, Target

__all__ = ["ReplayStats", "replay", "replay_commands", "parse_speed", "execute", "read_state", "state_reader",
           "states_equal", "RouteStateReader"]


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


async def read_state(reader: StateReader | None, command: Command, outcome: Outcome) -> None:
    """Read back the state a command left on one target into its outcome (never raises)."""
    if reader is None or outcome.status is Status.TIMEOUT:
        return
    try:
        outcome.state = await reader.read(command)
    except ShadowError as exc:
        outcome.error = f"{outcome.error}; {exc.message}" if outcome.error else exc.message
    except Exception as exc:  # a reader bug must not stop the replay
        outcome.error = f"state read-back failed: {type(exc).__name__}: {exc}"


async def execute(target: CommandTarget, reader: StateReader | None, command: Command) -> Outcome:
    """Send a command to one target, then read back the state it left (never raises)."""
    outcome = await target.send(command)
    await read_state(reader, command, outcome)
    return outcome


async def settle_new_state(reader: StateReader, command: Command, legacy: Outcome, new: Outcome,
                           state: RouteState, equal: Callable[[Any, Any], bool]) -> None:
    """Read the new side's state until it settles (see shadow.settle), recording how long it took."""
    if new.status is not Status.OK or legacy.state is None:
        await read_state(reader, command, new)
        return
    try:
        settled = await read_settled(reader, command, legacy.state, deadline=state.settle, quiet=state.quiet,
                                     interval=state.interval, equal=equal)
    except ShadowError as exc:
        new.error = f"{new.error}; {exc.message}" if new.error else exc.message
        return
    new.state, new.settle_ms, new.settled = settled.state, settled.settle_ms, settled.converged


def entity_of(command: Command) -> tuple[str, str] | None:
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
    settle: Callable[[Command], RouteState | None] = lambda _c: None,
    equal: Callable[[Command], Callable[[Any, Any], bool]] | None = None,
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
            legacy_outcome, new_outcome = await asyncio.gather(legacy[0].send(command), new[0].send(command))
            state = settle(command)
            if state is not None and state.settle > 0 and new[1] is not None and equal is not None:
                await read_state(legacy[1], command, legacy_outcome)
                await settle_new_state(new[1], command, legacy_outcome, new_outcome, state, equal(command))
            else:
                await asyncio.gather(read_state(legacy[1], command, legacy_outcome),
                                     read_state(new[1], command, new_outcome))
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
        entity = entity_of(command)
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
    states = {route.command: route.state for route in config.routes if route.state is not None}
    normaliser = Normaliser(load_rules(config.store.rules).steps)
    async with client_session(limit) as session:
        targets: dict[Target, tuple[CommandTarget, StateReader | None]] = {}
        for target in Target:
            settings = config.targets[target.value]
            http = HttpTarget(target, settings, config.routes, session=session)
            sender: CommandTarget = http
            if settings.kafka is not None:
                sender = KafkaTarget(target, settings.kafka, timeout=settings.timeout)
                await sender.start()
            targets[target] = (sender, state_reader(config, target, http))
        try:
            return await replay_commands(commands, targets, sink, speed=speed, concurrency=limit, on_pair=on_pair,
                                         primary=lambda c: primary_target(config.routing, c),
                                         settle=lambda c: states.get(c.kind),
                                         equal=lambda c: states_equal(normaliser, c.kind))
        finally:
            sink.close()
            for sender, reader in targets.values():
                await sender.close()
                if reader is not None:
                    await reader.close()


class RouteStateReader:
    """A StateReader that reads each command kind the way its route says: a database, or an HTTP GET."""

    def __init__(self, sql: SqlStateReader | None, http: StateReader | None) -> None:
        self._sql, self._http = sql, http

    async def read(self, command: Command) -> Any:
        """The touched entities, from the database when the route names one for this side."""
        if self._sql is not None and self._sql.statement(command.kind) is not None:
            return await self._sql.read(command)
        return await self._http.read(command) if self._http is not None else None

    async def close(self) -> None:
        """Release both readers."""
        for reader in (self._sql, self._http):
            if reader is not None:
                await reader.close()


def state_reader(config: Config, target: Target, http: HttpTarget) -> StateReader:
    """How a target's state is read back: its database where routes say so, else the route's GET."""
    url = config.targets[target.value].state
    sql = SqlStateReader(target, url.reveal(), config.routes) if url is not None else None
    return RouteStateReader(sql, HttpStateReader(http, config.routes))


def states_equal(normaliser: Normaliser, kind: str) -> Callable[[Any, Any], bool]:
    """Whether two states are equal once the rules have normalised them (copies; the states stay as read)."""
    def equal(legacy: Any, new: Any) -> bool:
        a, b = {"state": orjson.loads(orjson.dumps(legacy))}, {"state": orjson.loads(orjson.dumps(new))}
        normaliser.apply(kind, a, b)
        return canonical_bytes(a) == canonical_bytes(b)
    return equal
