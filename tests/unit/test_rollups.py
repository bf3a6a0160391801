"""Hourly roll-ups (pairs, latency histograms, quirk occurrences) always equal a recount of the stored pairs."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.catalogue import Catalogue, open_catalogue, upgrade
from rules.rollups import bin_bounds, hour_of, latency_bin
from rules.schema import differences, latency_days, latency_hours, pair_hours, pair_keys, pair_results, quirk_hours
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into

BASE = datetime(2026, 11, 2, 11, 0, tzinfo=timezone.utc)


def arrival(token: str, minute: int, zone: str | None, kind: str, padded: bool, new_status: Status,
            latency: float) -> Pair:
    legacy_state = {"name": "Ann   " if padded else "Ann", "zone": "CHI" if padded else "chi"}
    return Pair(
        command=Command(kind=kind, token=token, zone=zone, keys={"load_id": f"L-{token}", "stop": "1"},
                        received_at=BASE + timedelta(minutes=minute)),
        legacy=Outcome(target=Target.LEGACY, status=Status.OK, http_status=200, state=legacy_state, latency_ms=latency),
        new=Outcome(target=Target.NEW, status=new_status, http_status=200, state={"name": "Ann", "zone": "chi"},
                    latency_ms=latency * 3),
    )


arrivals = st.lists(st.tuples(
    st.sampled_from([f"t{i}" for i in range(6)]), st.integers(0, 300), st.sampled_from(["chi", "nyc", None]),
    st.sampled_from(["assign_load", "cancel_load"]), st.booleans(), st.sampled_from([Status.OK, Status.TIMEOUT]),
    st.floats(0.0, 5000.0)), min_size=1, max_size=25)


def rollups(catalogue: Catalogue) -> dict[str, Counter]:
    with catalogue.engine.connect() as conn:
        return {
            "pairs": Counter({(h, c, z): (p, m, d, le, ne) for h, c, z, p, m, d, le, ne in conn.execute(
                sa.select(pair_hours)) if p}),
            "latency": Counter({(h, c, z, t, b): n for h, c, z, t, b, n in conn.execute(sa.select(latency_hours)) if n}),
            "latency_days": Counter({(d, c, z, t, b): n for d, c, z, t, b, n in conn.execute(sa.select(latency_days))
                                     if n}),
            "quirks": Counter({(q, h, c, z): (d, p) for q, h, c, z, d, p in conn.execute(sa.select(quirk_hours)) if d}),
            "keys": Counter(tuple(r) for r in conn.execute(sa.select(pair_keys))),
        }


def recount(catalogue: Catalogue) -> dict[str, Counter]:
    pairs: dict[tuple, list[int]] = {}
    latency: Counter = Counter()
    quirks: dict[tuple, list[int]] = {}
    with catalogue.engine.connect() as conn:
        rows = conn.execute(sa.select(pair_results)).mappings().all()
        found = Counter((t, q) for t, q in conn.execute(sa.select(differences.c.token, differences.c.quirk)))
    by_token = {r["token"]: r for r in rows}
    for r in rows:
        key = (hour_of(r["received_at"]), r["command"], r["zone"] or "")
        counts = pairs.setdefault(key, [0, 0, 0, 0, 0])
        for i, v in enumerate((1, r["matched"], r["difference_count"], r["legacy_status"] != "ok",
                               r["new_status"] != "ok")):
            counts[i] += int(v)
        latency[(*key, "legacy", latency_bin(r["legacy_latency_ms"]))] += 1
        latency[(*key, "new", latency_bin(r["new_latency_ms"]))] += 1
    for (token, quirk), n in found.items():
        r = by_token[token]
        counts = quirks.setdefault((quirk, hour_of(r["received_at"]), r["command"], r["zone"] or ""), [0, 0])
        counts[0] += n
        counts[1] += 1
    keys = Counter((t, name, f"L-{t}" if name == "load_id" else "1") for t in by_token for name in ("load_id", "stop"))
    days: Counter = Counter()
    for (h, c, z, t, b), n in latency.items():
        days[(h.replace(hour=0), c, z, t, b)] += n
    return {"pairs": Counter({k: tuple(v) for k, v in pairs.items()}), "latency": latency, "latency_days": days,
            "quirks": Counter({k: tuple(v) for k, v in quirks.items()}), "keys": keys}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals, st.integers(1, 4))
def test_hourly_roll_ups_equal_a_recount_whatever_arrives_again(tmp_path_factory, items, batch) -> None:
    catalogue = open_catalogue(f"sqlite:///{tmp_path_factory.mktemp('cat') / 'c.db'}")
    try:
        for start in range(0, len(items), batch):
            compare_into([arrival(*item) for item in items[start:start + batch]], catalogue)
        assert rollups(catalogue) == recount(catalogue)
    finally:
        catalogue.close()


def test_an_existing_catalogue_is_back_filled_by_the_migration(tmp_path) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from rules.catalogue import _MIGRATIONS

    catalogue = open_catalogue(f"sqlite:///{tmp_path / 'c.db'}")
    compare_into([arrival(f"t{i}", i * 17, ("chi", "nyc", None)[i % 3], "assign_load", i % 2 == 0, Status.OK, i * 1.5)
                  for i in range(40)], catalogue)
    expected = rollups(catalogue)
    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    upgrade(catalogue.engine)
    assert rollups(catalogue) == expected == recount(catalogue)
    catalogue.close()


@given(st.floats(0.0, 1e7, allow_nan=False))
def test_a_latency_falls_inside_its_bin(ms: float) -> None:
    lower, upper = bin_bounds(latency_bin(ms))
    assert ms < 0.001 * 1.1 or lower <= ms * (1 + 1e-9) and ms <= upper * (1 + 1e-9)
    assert upper / lower < 1.091


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(-30, 80), st.integers(0, 80), st.sampled_from([None, "chi"]))
def test_latency_from_whole_days_and_edge_hours_equals_the_hourly_sum(tmp_path_factory, start, length, zone) -> None:
    from reports.query import Scope, latency

    catalogue = open_catalogue(f"sqlite:///{tmp_path_factory.mktemp('lat') / 'c.db'}")
    try:
        compare_into([arrival(f"t{i}", i * 37, ("chi", "nyc")[i % 2], "assign_load", False, Status.OK, 1.0 + i % 17)
                      for i in range(120)], catalogue)  # 120 pairs over about 3 days
        scope = Scope(since=BASE + timedelta(hours=start), until=BASE + timedelta(hours=start + length), zone=zone)
        with catalogue.engine.connect() as conn:
            found = latency(conn, scope)
            expected = Counter()
            for target, index, n in conn.execute(sa.select(latency_hours.c.target, latency_hours.c.bin,
                                                           latency_hours.c.pairs).where(*scope.where(latency_hours))):
                expected[(target, index)] += n
        got = Counter({(t, round(lo, 9)): n for t, lat in found.items() for lo, _up, n in lat.histogram})
        want = Counter({(t, round(bin_bounds(i)[0], 9)): n for (t, i), n in expected.items() if n})
        assert got == want
    finally:
        catalogue.close()
