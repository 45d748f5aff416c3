"""The admin service and case tests' setup: a database per test holding one user per role
(password ``PASSWORD``), copied from a template made once per session (support.databases:
SQLite, or PostgreSQL with LEREC_TEST_DATABASE_URL), and the admin app on it.

Conftests import the ``dbs`` and ``database_url`` fixtures from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lerec.hub.cases import users as user_service
from lerec.hub.db import make_engine, migrate, sessionmaker
from lerec.hub.rules import default_rulebook

from .databases import Databases, database, databases

PASSWORD = "test-password-123"
#: name -> (role, display name); officer_b is NOT assigned to the test cases
USERS = {
    "officer_a": ("officer", "张执法"),
    "officer_b": ("officer", "李执法"),
    "handler_a": ("handler", "王承办"),
    "handler_b": ("handler", "赵承办"),
    "unit_head": ("unit_head", "刘科长"),
    "legal": ("legal_reviewer", "陈法制"),
    "agency_head": ("agency_head", "周镇长"),
    "archivist": ("archivist", "吴党政办"),
    "auditor": ("auditor", "郑审计"),
    # parties (当事人): linked to no case in the template
    "party_a": ("party", "刘当事人"),
    "party_b": ("party", "孙当事人"),
}
ROLE_USER = {"officer": "officer_a", "handler": "handler_a", "unit_head": "unit_head",
             "legal_reviewer": "legal", "agency_head": "agency_head",
             "archivist": "archivist", "auditor": "auditor", "party": "party_a"}


async def seed_users(url: str) -> None:
    """The schema and one user per role."""
    engine = make_engine(url)
    try:
        await migrate(engine)
        rb = default_rulebook()
        sessions = sessionmaker(engine)
        async with sessions() as s, s.begin():
            for name, (role, display) in USERS.items():
                await user_service.create_user(s, rb, name=name, role=role, password=PASSWORD,
                                               display_name=display)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    yield from databases(tmp_path_factory, seed_users)


@pytest.fixture
def database_url(dbs: Databases, tmp_path: Path) -> Iterator[str]:
    yield from database(dbs, tmp_path)


def admin_app(database_url: str, storage_dir: Path, **settings: Any) -> Any:
    """The admin app as the tests run it: the database already migrated, no refresh timer;
    ``settings``: further AdminSettings (e.g. the C2PA signer files)."""
    from lerec.hub.admin.app import create_app
    from lerec.hub.admin.settings import AdminSettings

    return create_app(AdminSettings(database_url=database_url, storage_dir=storage_dir,
                                    migrate=False, refresh_minutes=0, **settings))


def route_permissions(route: Any) -> list[str]:
    """The permissions a route's dependencies name through ``need``, outermost first."""
    found: list[str] = []

    def walk(dep: Any) -> None:
        perm = getattr(dep.call, "permission", None)
        if perm is not None:
            found.append(perm)
        for sub in dep.dependencies:
            walk(sub)

    walk(route.dependant)
    return found
