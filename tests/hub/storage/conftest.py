"""A real SeaweedFS with its S3 gateway on loopback (the ``seaweed`` fixture of
support.seaweed)."""

from __future__ import annotations

from support.admin import database_url, dbs  # noqa: F401 - fixtures
from support.seaweed import seaweed  # noqa: F401 - the fixture
