"""Fixtures of the trust tests (defined once in tests/support/trust_fixtures.py)."""

from support.trust_fixtures import *  # noqa: F403

import datetime as dt

import pytest
from lerec.hub.archive import build_archive

ARCHIVED_AT = dt.datetime(2026, 6, 20, 3, 0, tzinfo=dt.UTC)  # = NOW of the archive tests


@pytest.fixture
async def archived(tmp_path, evidence, mp4_bytes, make_case):
    """A case with linked clips, archived at ``ARCHIVED_AT``: (evidence, case, segs, result)."""
    case, segs = await make_case(evidence, mp4_bytes)
    result = await build_archive(evidence.sessions, evidence.store, case,
                                 hub_key=evidence.hub_key, archived_by="user:archivist",
                                 archive_root=tmp_path / "archives", now=ARCHIVED_AT)
    return evidence, case, segs, result
