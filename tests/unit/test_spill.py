"""Degrading pair sinks: buffered, spilled while delivery fails, drained in order, nothing twice, drops counted."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.spill import DegradingSink, SpillBusy, SpillFile
from rules.catalogue import Catalogue
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import CatalogueSink


def pair(n: int) -> Pair:
    return Pair(command=Command(kind="assign_load", token=f"tok-{n:05d}", zone="chi", keys={"load_id": f"L-{n}"}),
                legacy=Outcome(target=Target.LEGACY, status=Status.OK, state={"driver": "Ann   "}),
                new=Outcome(target=Target.NEW, status=Status.OK, state={"driver": "Ann"}))


class Store:
    """A delivery target that can be switched off; it records every delivery, in order."""

    def __init__(self) -> None:
        self.up = True
        self.received: list[str] = []
        self.lock = threading.Lock()

    def deliver(self, pairs: list[Pair]) -> None:
        if not self.up:
            raise ConnectionError("store down")
        with self.lock:
            self.received += [p.token for p in pairs]


def until(condition, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_while_the_store_is_down_pairs_spill_then_drain_in_order(tmp_path: Path) -> None:
    store = Store()
    sink = DegradingSink("test", store.deliver, SpillFile(tmp_path / "s.spill"), batch=7, max_age=0.01, retry_s=0.05)
    for n in range(20):
        sink.write(pair(n))
    until(lambda: len(store.received) == 20)
    store.up = False
    for n in range(20, 120):
        sink.write(pair(n))
    until(lambda: sink.spilled >= 90)
    assert sink.degraded_since is not None and sink.spill.has_pending()
    store.up = True
    for n in range(120, 150):                 # pairs keep coming while the file drains: they queue behind it
        sink.write(pair(n))
    until(lambda: len(store.received) == 150 and sink.degraded_since is None)
    sink.close()
    assert store.received == [f"tok-{n:05d}" for n in range(150)]   # every pair once, in order
    assert sink.drained >= 90 and not sink.dropped and not sink.spill.has_pending()


def test_a_clean_stop_while_the_store_is_down_keeps_every_pair_for_the_next_start(tmp_path: Path) -> None:
    store = Store()
    store.up = False
    spill = SpillFile(tmp_path / "s.spill")
    sink = DegradingSink("test", store.deliver, spill, max_age=0.01, retry_s=10)
    for n in range(40):
        sink.write(pair(n))
    sink.close()
    assert [p.token for p in spill.pending()] == [f"tok-{n:05d}" for n in range(40)]
    store.up = True
    restarted = DegradingSink("test", store.deliver, SpillFile(tmp_path / "s.spill"), retry_s=0.05)
    until(lambda: len(store.received) == 40)
    restarted.close()
    assert store.received == [f"tok-{n:05d}" for n in range(40)]


def test_a_drain_repeated_after_a_crash_counts_nothing_twice_in_the_catalogue(tmp_path: Path,
                                                                                 catalogue: Catalogue) -> None:
    spill = SpillFile(tmp_path / "s.spill")
    spill.append([pair(n) for n in range(30)])
    pairs, offset = spill.read(20)
    CatalogueSink(catalogue, spill=SpillFile(tmp_path / "other.spill")).close()  # schema in place
    from shadow.pipeline import compare_into

    compare_into(pairs, catalogue)   # delivered, then the process died before it recorded the offset
    assert spill.offset() == 0
    sink = CatalogueSink(catalogue, spill=spill, retry_s=0.05)   # the restart drains the file from 0 again
    until(lambda: not spill.has_pending())
    sink.close()
    from reports.summary import summarise

    summary = summarise(catalogue)
    assert summary.overall.pairs == 30
    assert sum(q.pairs for q in catalogue.quirks()) == 30   # the 20 stored twice moved no count


def test_a_full_disk_drops_with_a_counted_logged_reason_and_the_sink_recovers_by_itself(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store()
    store.up = False
    path = tmp_path / "s.spill"
    os.symlink("/dev/full", path)               # every write: ENOSPC, as on a full disk
    sink = DegradingSink("test", store.deliver, SpillFile(path), max_age=0.01, retry_s=0.05)
    with caplog.at_level(logging.ERROR, logger="shadow.spill"):
        for n in range(10):
            sink.write(pair(n))
        until(lambda: sum(sink.dropped.values()) == 10)
    (reason,) = sink.dropped
    assert "No space left on device" in reason and reason in caplog.text
    path.unlink()                                # space is back
    store.up = True
    for n in range(10, 20):
        sink.write(pair(n))
    until(lambda: len(store.received) == 10)
    sink.close()
    assert store.received == [f"tok-{n:05d}" for n in range(10, 20)]


def test_a_full_buffer_drops_and_counts_without_blocking_the_caller(tmp_path: Path) -> None:
    release = threading.Event()

    def stuck(pairs: list[Pair]) -> None:
        release.wait(10)

    sink = DegradingSink("test", stuck, SpillFile(tmp_path / "s.spill"), buffer=5, batch=1, max_age=0.001)
    started = time.monotonic()
    for n in range(50):
        sink.write(pair(n))
    assert time.monotonic() - started < 1.0 and sink.dropped["buffer_full"] >= 40
    release.set()
    sink.close()


def test_pairs_go_in_one_batch_per_max_age_and_a_full_batch_goes_at_once(tmp_path: Path) -> None:
    batches: list[int] = []
    sink = DegradingSink("test", lambda pairs: batches.append(len(pairs)), SpillFile(tmp_path / "s.spill"),
                         batch=5, max_age=0.3)
    for n in range(3):
        sink.write(pair(n))
    until(lambda: batches == [3])               # the writes did not each start a delivery: one batch, after max_age
    sink._max_age = 30.0                        # from the next wait on, only a whole batch (or close) can wake it
    time.sleep(0.35)
    for n in range(3, 8):
        sink.write(pair(n))
    until(lambda: batches == [3, 5], within=5)  # the fifth write woke the thread, long before max_age
    sink.write(pair(8))
    sink.close()                                # and close delivers what is left at once
    assert batches == [3, 5, 1] and sink.delivered == 9


def test_the_kafka_producer_checksums_record_batches_in_c() -> None:
    # kafka-python falls back to a pure-Python CRC-32C without the crc32c package (its [crc32c] extra). In the soak
    # that loop took most of the producer thread's time, holding the GIL the proxy's event loop waited for: caller
    # p99 13-21 ms a minute at 500 commands/s, 9 ms with the C one.
    from kafka.record import util

    assert util._crc32c is not util.crc32c_py


def test_one_spill_file_has_one_drainer(tmp_path: Path) -> None:
    first = DegradingSink("a", Store().deliver, SpillFile(tmp_path / "s.spill"))
    with pytest.raises(SpillBusy, match="another process"):
        DegradingSink("b", Store().deliver, SpillFile(tmp_path / "s.spill"))
    first.close()
    DegradingSink("b", Store().deliver, SpillFile(tmp_path / "s.spill")).close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 15)), min_size=1, max_size=8))
def test_whatever_the_outages_every_pair_arrives_once_in_order(tmp_path_factory, phases) -> None:
    store = Store()
    folder = tmp_path_factory.mktemp("spill")
    sink = DegradingSink("test", store.deliver, SpillFile(folder / "s.spill"), batch=4, max_age=0.001, retry_s=0.01)
    sent = 0
    for up, count in phases:
        store.up = up
        for _ in range(count):
            sink.write(pair(sent))
            sent += 1
        time.sleep(0.02)
    store.up = True
    until(lambda: len(store.received) == sent)
    sink.close()
    assert store.received == [f"tok-{n:05d}" for n in range(sent)]


def test_spill_status_and_drain_for_an_operator(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from reports.summary import summarise
    from rules.catalogue import open_catalogue
    from shadow.cli import app

    config = tmp_path / "shadow.toml"
    config.write_text('[targets.legacy]\nurl = "http://127.0.0.1:9"\n[targets.new]\nurl = "http://127.0.0.1:9"\n'
                      '[store]\nurl = "sqlite:///shadow.db"\n[proxy]\nsink = "catalogue"\nspill_dir = "spill"\n')
    SpillFile(tmp_path / "spill" / "catalogue-127.0.0.1-8080.spill").append([pair(n) for n in range(25)])
    runner = CliRunner()
    status = runner.invoke(app, ["spill", "status", "--config", str(config), "--json"])
    assert status.exit_code == 0, status.output
    (found,) = json.loads(status.stdout)["files"]
    assert found["pending"] == 25 and found["sink"] == "catalogue"
    held = SpillFile(tmp_path / "spill" / "catalogue-127.0.0.1-8080.spill")
    held.lock()                                   # a running proxy owns it
    busy = runner.invoke(app, ["spill", "drain", "--config", str(config)])
    assert busy.exit_code == 1 and "another process" in busy.output
    held.unlock()
    drained = runner.invoke(app, ["spill", "drain", "--config", str(config), "--json"])
    assert drained.exit_code == 0 and json.loads(drained.stdout)[0]["drained"] == 25
    catalogue = open_catalogue(f"sqlite:///{tmp_path / 'shadow.db'}")
    assert summarise(catalogue).overall.pairs == 25
    catalogue.close()
    assert json.loads(runner.invoke(app, ["spill", "status", "--config", str(config), "--json"]).stdout)[
        "files"][0]["pending"] == 0
