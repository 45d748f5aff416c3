"""Test databases for the case and admin tests.

SQLite by default (a migrated template file copied per test); PostgreSQL when
``LEREC_TEST_DATABASE_URL`` is set (e.g. postgresql://postgres@127.0.0.1:5432/test): a
uniquely named template database is created and migrated once per test session, each test
gets its own copy (``CREATE DATABASE ... TEMPLATE``), and all of them are dropped at the end.
The template already holds one user per role (password ``PASSWORD``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from lerec.hub.cases import users as user_service
from lerec.hub.db import make_engine, migrate, sessionmaker, sqlite_url
from lerec.hub.rules import default_rulebook

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


async def _seed(url: str) -> None:
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


def _pg_admin_url(url: str) -> tuple[str, str]:
    """(asyncpg DSN of the server's 'postgres' db, base DSN without a database)."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
    base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return base + "/postgres", base


async def _pg(admin_dsn: str, *sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        for stmt in sql:
            await conn.execute(stmt)
    finally:
        await conn.close()


class Databases:
    """Per-session template and per-test copies."""

    def __init__(self, root: Path) -> None:
        self.pg_url = os.environ.get("LEREC_TEST_DATABASE_URL", "").strip() or None
        self.root = root
        self.tag = uuid.uuid4().hex[:10]
        self.created: list[str] = []
        if self.pg_url:
            self.admin_dsn, self.base = _pg_admin_url(self.pg_url)
            self.template = f"lerec_test_{self.tag}_tpl"
            asyncio.run(_pg(self.admin_dsn, f'CREATE DATABASE "{self.template}"'))
            self.created.append(self.template)
            asyncio.run(_seed(f"{self.base}/{self.template}"))
        else:
            self.template_file = root / "template.db"
            asyncio.run(_seed(sqlite_url(self.template_file)))
        self.n = 0

    @property
    def dialect(self) -> str:
        return "postgresql" if self.pg_url else "sqlite"

    def new(self, tmp_path: Path) -> str:
        self.n += 1
        if self.pg_url:
            name = f"lerec_test_{self.tag}_{self.n}"
            asyncio.run(_pg(self.admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
            self.created.append(name)
            return f"{self.base}/{name}"
        path = tmp_path / "hub.db"
        shutil.copy(self.template_file, path)
        return sqlite_url(path)

    def drop(self, url: str) -> None:
        if self.pg_url:
            name = url.rsplit("/", 1)[1]
            asyncio.run(_pg(self.admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            self.created.remove(name)

    def close(self) -> None:
        if self.pg_url:
            for name in reversed(self.created):  # copies first, then their template
                try:
                    asyncio.run(_pg(self.admin_dsn,
                                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                except Exception as exc:  # noqa: BLE001  (keep dropping the others)
                    print(f"could not drop test database {name}: {exc}")
            self.created.clear()


def databases_fixture(tmp_path_factory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("dbtemplate"))
    try:
        yield dbs
    finally:
        dbs.close()


def database_url_fixture(dbs: Databases, tmp_path: Path) -> Iterator[str]:
    url = dbs.new(tmp_path)
    try:
        yield url
    finally:
        dbs.drop(url)


Loader = Callable[[str], object]
