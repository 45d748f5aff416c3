"""Fixtures for the case-service tests: a migrated database with one user per role."""

from __future__ import annotations

from support.admin import database_url, dbs  # noqa: F401 - the fixtures
