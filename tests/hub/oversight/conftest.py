"""Oversight test fixtures: a migrated database (SQLite file in tmp_path, or PostgreSQL when
LEREC_TEST_DATABASE_URL is set: a uniquely named database per test, cloned from a migrated
template made once per module and dropped afterwards), a real LocalBlobStore, and a small
builder that stores chained segments the way the ingest daemon does."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lerec.hub.db import make_engine, migrate, sessionmaker, sqlite_url
from lerec.hub.db.models import Device, Segment
from lerec.hub.storage import LocalBlobStore
from lerec.protocol import ZERO_HASH

PG_ENV = "LEREC_TEST_DATABASE_URL"
UTC = dt.UTC


def _pg_parts(url: str) -> tuple[str, str]:
    """(server URL without database for asyncpg, database name)."""
    url = url.replace("postgresql+asyncpg://", "postgresql://")
    base, _, _db = url.rpartition("/")
    return base, _db


async def _pg_admin(sql: str) -> None:
    import asyncpg

    base, db = _pg_parts(os.environ[PG_ENV])
    conn = await asyncpg.connect(f"{base}/{db}")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def pg_template() -> Iterator[str | None]:
    if not os.environ.get(PG_ENV):
        yield None
        return
    name = f"lerec_ov_tmpl_{uuid.uuid4().hex[:10]}"
    base, _ = _pg_parts(os.environ[PG_ENV])

    async def setup() -> None:
        await _pg_admin(f'CREATE DATABASE "{name}"')
        engine = make_engine(f"{base}/{name}")
        await migrate(engine)
        await engine.dispose()

    asyncio.run(setup())
    yield name
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.asynccontextmanager
async def _database(tmp_path: Path, pg_template: str | None, stem: str) -> AsyncIterator[str]:
    if pg_template is None:
        yield sqlite_url(tmp_path / f"{stem}.db")
        return
    name = f"lerec_ov_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    base, _ = _pg_parts(os.environ[PG_ENV])
    try:
        yield f"{base}/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(tmp_path: Path, pg_template: str | None) -> AsyncIterator[str]:
    async with _database(tmp_path, pg_template, "hub") as url:
        yield url


def t(day: str, hm: str = "10:00") -> dt.datetime:
    """Beijing local time -> aware UTC (``t("2024-09-27", "20:00")``)."""
    local = dt.datetime.fromisoformat(f"{day}T{hm}:00+08:00")
    return local.astimezone(UTC)


@dataclass
class Chain:
    """A recorder's manifests as the recorder made them: seq -> (manifest, prev_hash)."""

    device_id: str
    manifests: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)

    def make(self, seq: int, salt: str = "") -> tuple[bytes, bytes]:
        prev = ZERO_HASH if seq == 0 else hashlib.sha256(self.manifests[seq - 1][0]).digest()
        manifest = f"manifest {self.device_id} {seq} {salt}".encode()
        self.manifests[seq] = (manifest, prev)
        return manifest, prev


@dataclass
class Db:
    sessions: Any
    store: LocalBlobStore
    tmp: Path
    chains: dict[str, Chain] = field(default_factory=dict)
    officers: dict[str, str] = field(default_factory=dict)
    engine: Any = None

    async def device(self, device_id: str = "rec-a", officer_id: str = "officer-7") -> Device:
        async with self.sessions() as s, s.begin():
            dev = Device(device_id=device_id, signing_key=bytes(32), officer_id=officer_id,
                         enrolled_at=t("2024-01-01"))
            s.add(dev)
        self.chains[device_id] = Chain(device_id)
        self.officers[device_id] = officer_id
        return dev

    def chain(self, device_id: str, upto: int) -> Chain:
        c = self.chains[device_id]
        for seq in range(len(c.manifests), upto + 1):
            c.make(seq)
        return c

    async def segment(
        self,
        device_id: str,
        seq: int,
        start: dt.datetime,
        *,
        minutes: int = 5,
        officer_id: str | None = None,
        received: dt.datetime | None = None,
        forged: bool = False,
        bad_prev: bool = False,
        content: bytes | None = None,
    ) -> Segment:
        """Store one segment (blob + row) as ingest would; ``forged`` replaces the recorder's
        own manifest for ``seq`` by another one (a replaced segment), ``bad_prev`` by one that
        does not chain to its predecessor (nor to genesis)."""
        c = self.chain(device_id, seq)
        manifest, prev = c.manifests[seq]
        if forged:
            manifest = manifest + b" forged"
        if bad_prev:
            manifest, prev = manifest + b" bad-prev", hashlib.sha256(b"elsewhere").digest()
        data = content if content is not None else os.urandom(1000)
        digest = hashlib.sha256(data).hexdigest()
        path = self.tmp / f"blob-{uuid.uuid4().hex}"
        path.write_bytes(data)
        ref = await self.store.put_file(path, digest, len(data))
        end = start + dt.timedelta(minutes=minutes)
        row = Segment(
            segment_id=f"{device_id}-{seq}{'-x' if forged else ''}{'-b' if bad_prev else ''}",
            device_id=device_id, seq=seq, officer_id=officer_id or self.officers[device_id],
            start_at=start, end_at=end, media_type="video/mp4",
            length=len(data), sha256=digest, important=False, recovered=False,
            clock_state="synced", clock_offset_ms=0, prev_hash=prev, manifest=manifest,
            manifest_hash=hashlib.sha256(manifest).digest(), receipt=b"r", stored_ref=ref,
            received_at=received or end + dt.timedelta(minutes=1),
        )
        async with self.sessions() as s, s.begin():
            s.add(row)
        return row


@contextlib.asynccontextmanager
async def _db(url: str, tmp: Path) -> AsyncIterator[Db]:
    engine = make_engine(url)
    await migrate(engine)
    try:
        yield Db(sessionmaker(engine), LocalBlobStore(tmp / "store"), tmp, engine=engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Db]:
    async with _db(database_url, tmp_path) as d:
        yield d


@pytest.fixture
async def other_db(tmp_path: Path, pg_template: str | None) -> AsyncIterator[Db]:
    """A second, independent database (to run the same story two ways and compare)."""
    (tmp_path / "other").mkdir()
    async with _database(tmp_path, pg_template, "other") as url, _db(url, tmp_path / "other") as d:
        yield d


@pytest.fixture
def at() -> Any:
    return t
