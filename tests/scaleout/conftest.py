"""Engines the scale-out profile runs on: a real PostgreSQL database and a real SeaweedFS.

PostgreSQL: ``LEREC_TEST_DATABASE_URL`` if set, else the local server on 127.0.0.1:5432 (the
suite's second pass needs it anyway); a fresh database per test, dropped afterwards. A missing
server fails loudly. SeaweedFS: the ``seaweed`` fixture of support.seaweed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.databases import FreshPostgres
from support.seaweed import seaweed  # noqa: F401 - the fixture


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (plain postgresql:// URL), dropped afterwards."""
    with FreshPostgres() as url:
        yield url
