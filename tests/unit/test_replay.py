"""Replay: both targets get every command, entity order is kept, speed scales the gaps."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone

import pytest

from adapters.memory import MemoryPairs
from shadow.errors import ShadowError
from shadow.model import Command, Outcome, Status, Target
from shadow.replay import execute, parse_speed, replay_commands

T0 = datetime(2026, 11, 2, 11, 0, tzinfo=timezone.utc)


class RecordingTarget:
    """An in-process target that answers after a random pause and records the order it saw."""

    def __init__(self, target: Target, seed: int) -> None:
        self.target = target
        self.seen: list[str] = []
        self.rng = random.Random(seed)
        self.sent_at: dict[str, float] = {}

    async def send(self, command: Command) -> Outcome:
        self.sent_at[command.token] = asyncio.get_running_loop().time()
        await asyncio.sleep(self.rng.random() / 500)
        self.seen.append(command.token)
        return Outcome(target=self.target, status=Status.OK, http_status=200, response={"ok": command.token})

    async def close(self) -> None:
        pass


class FailingReader:
    async def read(self, command: Command):
        raise RuntimeError("reader exploded")

    async def close(self) -> None:
        pass


def commands(n: int, loads: int = 5, gap_ms: int = 0) -> list[Command]:
    return [Command(kind="assign_load", token=f"c{i:03d}", keys={"load_id": f"L{i % loads}"},
                    received_at=T0 + timedelta(milliseconds=gap_ms * i)) for i in range(n)]


def run(cmds, **kwargs):
    legacy, new = RecordingTarget(Target.LEGACY, 1), RecordingTarget(Target.NEW, 2)
    sink = MemoryPairs()
    stats = asyncio.run(replay_commands(cmds, {Target.LEGACY: (legacy, None), Target.NEW: (new, None)}, sink,
                                        **kwargs))
    return legacy, new, sink, stats


def test_every_command_becomes_one_pair_with_both_outcomes() -> None:
    legacy, new, sink, stats = run(commands(60), concurrency=8)
    assert stats.pairs == stats.commands == 60 == len(sink)
    assert sorted(p.token for p in sink) == sorted(c.token for c in commands(60))
    assert all(p.legacy.target is Target.LEGACY and p.new.target is Target.NEW for p in sink)
    assert stats.statuses["legacy"]["ok"] == stats.statuses["new"]["ok"] == 60


def test_commands_on_one_entity_keep_trace_order_under_concurrency() -> None:
    legacy, new, _, _ = run(commands(80, loads=4), concurrency=16)
    for target in (legacy, new):
        for load in range(4):
            mine = [t for t in target.seen if int(t[1:]) % 4 == load]
            assert mine == sorted(mine)


def test_speed_scales_the_recorded_gaps() -> None:
    # Gaps of 100 ms replayed at 4x are 25 ms apart; compare positions, not durations.
    legacy, _, _, _ = run(commands(5, loads=5, gap_ms=100), speed=4.0)
    times = [legacy.sent_at[f"c{i:03d}"] for i in range(5)]
    offsets = [b - times[0] for b in times]
    for i, offset in enumerate(offsets):
        assert offset >= i * 0.025 - 0.002


def test_a_state_reader_failure_is_recorded_not_raised() -> None:
    target = RecordingTarget(Target.NEW, 3)
    outcome = asyncio.run(execute(target, FailingReader(), Command(kind="x")))
    assert outcome.status is Status.OK and "reader exploded" in outcome.error


@pytest.mark.parametrize("text,expected", [("1", 1.0), ("0.5", 0.5), ("2x", 2.0), ("max", None), ("MAX", None)])
def test_parse_speed(text, expected) -> None:
    assert parse_speed(text) == expected


@pytest.mark.parametrize("text", ["fast", "0", "-1", ""])
def test_parse_speed_refuses_nonsense(text) -> None:
    with pytest.raises(ShadowError, match="--speed"):
        parse_speed(text)
