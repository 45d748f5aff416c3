"""Schema migrations: idempotent, and safe when several hub workers start at once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import text

from lerec.hub.db import make_engine, migrate, sqlite_url
from support.databases import server

# PostgreSQL itself, on either pass: LEREC_TEST_DATABASE_URL, else the local server
PG = server()


async def test_sqlite_migrate_twice(tmp_path):
    engine = make_engine(sqlite_url(tmp_path / "m.db"))
    await migrate(engine)
    await migrate(engine)
    async with engine.connect() as c:
        heads = (await c.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    await engine.dispose()
    assert len(heads) >= 5, heads  # one head per domain branch


@pytest.mark.timeout(90)
async def test_concurrent_workers_migrate_one_postgres_database():
    name = f"lerec_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG.rsplit("/", 1)[0] + f"/{name}"
        engines = [make_engine(url) for _ in range(3)]
        await asyncio.gather(*(migrate(e) for e in engines))  # no duplicate-table race
        async with engines[0].connect() as c:
            n = (await c.execute(text("SELECT count(*) FROM audit_head"))).scalar_one()
        assert n == 1
        for e in engines:
            await e.dispose()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
