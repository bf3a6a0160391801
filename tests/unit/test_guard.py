"""The guard's clock arithmetic: trips after trip_after_s of continuous failure, holds are bounded, windows measured."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadow.config import CutoverConfig
from shadow.errors import ConfigError
from shadow.guard import Guard


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, **kw) -> tuple[Guard, list, list]:
    trips, windows = [], []
    made = Guard(trip_after_s=kw.get("trip", 4.0), hold_max_s=kw.get("hold_s", 12.0), hold_max=kw.get("hold", 10),
                 on_trip=trips.append, on_window=windows.append, clock=clock)
    return made, trips, windows


def test_it_trips_only_after_trip_after_s_of_continuous_failure() -> None:
    clock = Clock()
    g, trips, windows = guard(clock)
    g.failed("chi", "1-a")
    clock.now += 3.9
    assert not g.check("chi", "1-a") and trips == []
    g.succeeded("chi")                       # one success resets the streak and closes the window
    assert windows[0].seconds == pytest.approx(3.9) and not windows[0].tripped
    g.failed("chi", "1-a")
    clock.now += 4.0
    assert g.check("chi", "1-a") and trips == ["chi"] and g.tripped("chi", "1-a")
    assert not g.tripped("chi", "2-b")       # a new route table (the rollback, or a new flip) clears it
    assert not g.tripped("nyc", "1-a")


def test_a_failing_probe_trips_without_traffic_but_opens_no_window() -> None:
    clock = Clock()
    g, trips, windows = guard(clock)
    g.failed("chi", "1-a", command=False)
    clock.now += 5
    g.check_all("1-a")
    assert trips == ["chi"] and g.zones["chi"].window is None and windows == []


def test_held_commands_are_released_by_the_trip_by_recovery_or_by_their_deadline() -> None:
    async def scenario() -> None:
        clock = Clock()
        g, trips, _ = guard(clock, trip=1.0, hold_s=3.0, hold=2)
        g.failed("chi", "v")
        first = asyncio.create_task(g.hold("chi", lambda: "v"))
        second = asyncio.create_task(g.hold("chi", lambda: "v"))
        await asyncio.sleep(0.01)
        assert await g.hold("chi", lambda: "v") == "full"   # at most hold_max held per zone
        clock.now += 1.0
        assert await first == "tripped" and await second == "tripped" and trips == ["chi"]
        g2, _, _ = guard(Clock(), trip=5.0, hold_s=3.0)
        g2.failed("nyc", "v")
        held = asyncio.create_task(g2.hold("nyc", lambda: "v"))
        await asyncio.sleep(0.01)
        g2.probe_ok("nyc")
        assert await held == "recovered"
        clock3 = Clock()
        g3, _, _ = guard(clock3, trip=5.0, hold_s=3.0)
        g3.failed("den", "v")
        late = asyncio.create_task(g3.hold("den", lambda: "v"))
        await asyncio.sleep(0.01)
        clock3.now += 3.5
        assert await late == "timeout"

    asyncio.run(scenario())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["fail", "ok", "tick"]), st.floats(0, 3)), max_size=40),
       st.floats(0.5, 10))
def test_it_never_trips_before_a_full_trip_after_s_of_failure(events, trip) -> None:
    clock = Clock()
    g, trips, windows = guard(clock, trip=trip)
    failing_since = None
    for kind, wait in events:
        clock.now += wait
        if kind == "fail":
            failing_since = clock.now if failing_since is None else failing_since
            g.failed("z", "v")
        elif kind == "ok":
            if not g.tripped("z", "v"):
                failing_since = None
            g.succeeded("z")
        else:
            g.check_all("v")
        if trips:
            assert failing_since is not None and clock.now - failing_since >= trip - 1e-9
            break
    assert all(w.seconds is not None and w.seconds >= 0 for w in windows)


def test_the_config_refuses_a_guard_that_cannot_fit_the_budget() -> None:
    with pytest.raises(ValueError, match="leaves no margin"):
        CutoverConfig(guard={"trip_after_s": 8, "hold_max_s": 9}, availability_budget_s=10)
    with pytest.raises(ValueError, match="above trip_after_s"):
        CutoverConfig(guard={"trip_after_s": 4, "hold_max_s": 3})
    with pytest.raises(ValueError):
        CutoverConfig(availability_budget_s=31)
    assert CutoverConfig(guard={"trip_after_s": 7, "hold_max_s": 10}, availability_budget_s=10).guard.trip_after_s == 7


def test_the_config_refuses_a_new_engine_timeout_that_breaks_the_budget() -> None:
    """A command to a hung new primary waits out [targets.new] timeout after the guard trips: the budget counts it."""
    from shadow.config import parse_config

    def config(timeout: float, trip: float = 4.0) -> str:
        return (f'[targets.legacy]\nurl = "http://a"\n[targets.new]\nurl = "http://b"\ntimeout = {timeout}\n'
                f'[cutover.guard]\ntrip_after_s = {trip}\n')

    assert parse_config(config(23)).targets["new"].timeout == 23  # 23 + 4 + 1 + 2 = 30
    with pytest.raises(ConfigError, match=r"timeout = 23.5.*use at most 23"):
        parse_config(config(23.5))
    with pytest.raises(ConfigError, match="use at most 17"):
        parse_config(config(20, trip=10) + "hold_max_s = 12\n")
