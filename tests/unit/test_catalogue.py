"""The catalogue: idempotent on the dispatch token, roll-ups that never count twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.memory import MemoryPairs
from reports.summary import summarise
from rules.catalogue import Catalogue, open_catalogue
from rules.compare import compare_pair
from shadow.errors import StoreError
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into

BASE = datetime(2026, 11, 2, 11, 0, tzinfo=timezone.utc)


def pair(token: str, legacy_state, new_state, *, minute: int = 0, kind: str = "assign_load") -> Pair:
    return Pair(
        command=Command(kind=kind, token=token, zone="chi", keys={"load_id": token},
                        received_at=BASE + timedelta(minutes=minute)),
        legacy=Outcome(target=Target.LEGACY, status=Status.OK, http_status=200, state=legacy_state, latency_ms=4),
        new=Outcome(target=Target.NEW, status=Status.OK, http_status=200, state=new_state, latency_ms=3),
    )


def padded(token: str, minute: int = 0) -> Pair:
    return pair(token, {"name": "Ann   ", "zone": "CHI"}, {"name": "Ann", "zone": "chi"}, minute=minute)


def counts(catalogue: Catalogue) -> dict[str, tuple[int, int]]:
    return {",".join(q.paths): (q.differences, q.pairs) for q in catalogue.quirks()}


def test_comparing_the_same_pairs_twice_changes_no_count(catalogue: Catalogue) -> None:
    pairs = MemoryPairs([padded(f"t{i}", i) for i in range(20)] + [pair("same", {"a": 1}, {"a": 1})])
    first = compare_into(pairs, catalogue).stored
    before = counts(catalogue), summarise(catalogue).to_dict()
    second = compare_into(pairs, catalogue).stored
    assert (counts(catalogue), summarise(catalogue).to_dict()) == before
    assert before[0] == {"state.name": (20, 20), "state.zone": (20, 20)}
    assert first.replaced == 0 and second.replaced == 21
    assert summarise(catalogue).overall.pairs == 21 and summarise(catalogue).overall.matched == 1


def test_a_pair_compared_again_with_a_new_result_moves_the_counts(catalogue: Catalogue) -> None:
    compare_into([padded("t1"), padded("t2")], catalogue)
    compare_into([pair("t1", {"name": "Ann"}, {"name": "Ann"})], catalogue)  # fixed since
    assert counts(catalogue) == {"state.name": (1, 1), "state.zone": (1, 1)}
    compare_into([pair("t2", {"name": "Ann"}, {"name": "Ann"})], catalogue)
    assert counts(catalogue) == {}  # quirks with no difference left are not listed


def test_one_pair_with_several_occurrences_counts_once_as_a_pair(catalogue: Catalogue) -> None:
    legacy = {"stops": [{"seq": 1, "a": "x "}, {"seq": 2, "a": "y "}]}
    new = {"stops": [{"seq": 1, "a": "x"}, {"seq": 2, "a": "y"}]}
    compare_into([pair("t1", legacy, new)], catalogue)
    compare_into([pair("t1", legacy, new)], catalogue)
    assert counts(catalogue) == {"state.stops[*].a": (2, 1)}


def test_first_and_last_seen_follow_the_commands_time(catalogue: Catalogue) -> None:
    compare_into([padded("t1", 30), padded("t2", 5), padded("t3", 50)], catalogue)
    quirk = catalogue.quirks()[0]
    assert quirk.first_seen == BASE + timedelta(minutes=5)
    assert quirk.last_seen == BASE + timedelta(minutes=50)


def test_quirk_show_returns_examples_and_accepts_a_prefix(catalogue: Catalogue) -> None:
    compare_into([padded("t1"), padded("t2")], catalogue)
    listed = catalogue.quirks()[0]
    shown = catalogue.quirk(listed.id[:6])
    assert shown.id == listed.id and shown.verdict == "open"
    assert [e.token for e in shown.examples] == ["t1", "t2"]
    assert shown.examples[0].legacy in ("Ann   ", "CHI")
    with pytest.raises(StoreError, match="no quirk"):
        catalogue.quirk("ffffffffffff")


tokens = st.lists(st.sampled_from([f"t{i}" for i in range(8)]), min_size=1, max_size=30)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tokens, st.lists(st.booleans(), min_size=30, max_size=30))
def test_roll_ups_equal_a_recount_whatever_the_order_of_arrivals(tmp_path_factory, order, fixed) -> None:
    catalogue = open_catalogue(f"sqlite:///{tmp_path_factory.mktemp('cat') / 'c.db'}")
    try:
        for i, token in enumerate(order):
            item = pair(token, {"n": "x"}, {"n": "x"}) if fixed[i] else padded(token, i)
            compare_into([item], catalogue)
        latest = {}
        for i, token in enumerate(order):
            latest[token] = not fixed[i]
        expected = sum(latest.values())
        got = counts(catalogue).get("state.name", (0, 0))
        assert got == (expected, expected)
        with catalogue.engine.connect() as conn:
            stored = conn.execute(sa.text("select count(*) from differences")).scalar_one()
        assert stored == 2 * expected
    finally:
        catalogue.close()


def test_unusable_catalogue_url_is_a_store_error(tmp_path) -> None:
    with pytest.raises(StoreError, match="cannot be used"):
        open_catalogue("nosuchdialect://x")


def test_compare_pair_result_fields() -> None:
    result = compare_pair(padded("t9", 3))
    assert (result.token, result.command, result.zone, result.legacy_status, result.primary) == \
        ("t9", "assign_load", "chi", "ok", "legacy")


def test_the_catalogue_sink_stores_a_steady_trickle_without_waiting_for_a_full_batch(catalogue: Catalogue) -> None:
    import threading
    import time

    from shadow.pipeline import CatalogueSink

    sink = CatalogueSink(catalogue, batch=500, max_age=0.1)
    feeding = threading.Event()
    feeding.set()
    stored_while_feeding = []

    def feed() -> None:
        for i in range(100):  # a pair every 20 ms: never a 50 ms lull, never 500 pairs
            sink.write(padded(f"trickle-{i}", i))
            time.sleep(0.02)
        feeding.clear()

    feeder = threading.Thread(target=feed)
    feeder.start()
    while feeding.is_set():
        with catalogue.engine.connect() as conn:
            stored_while_feeding.append(conn.execute(sa.text("select count(*) from pair_results")).scalar_one())
        time.sleep(0.05)
    feeder.join()
    sink.close()
    assert max(stored_while_feeding) > 0          # pairs reached the catalogue while the trickle went on
    assert summarise(catalogue).overall.pairs == 100
