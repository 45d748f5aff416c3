"""A retention deletion and a new link of the same segment, at the same time, never both
succeed: a linked segment is never deleted (第二十八条: case evidence stays in the case file).

Both lock the segment's row before they check for the other (``SELECT ... FOR UPDATE``). Run
on PostgreSQL (READ COMMITTED: LEREC_TEST_DATABASE_URL, else the local server), where without
the lock each would miss the other's uncommitted row, and on SQLite (one writer at a time).
Each story forces the dangerous interleaving: one side has done its check and holds its
transaction open while the other runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support.databases import FreshPostgres

from lerec.hub.db import make_engine, migrate, sessionmaker, sqlite_url
from lerec.hub.db.models import Device, Segment
from lerec.hub.db.oversight_models import SegmentDeletion, SegmentLink
from lerec.hub.oversight import (
    DeletionRefused,
    NotFound,
    approve_deletion,
    execute_deletion,
    link_segment,
    request_deletion,
)
from lerec.hub.storage import LocalBlobStore
from lerec.protocol import ZERO_HASH

START = dt.datetime(2024, 3, 1, 1, 0, tzinfo=dt.UTC)  # long past the retention period
WAIT = 0.5  # long enough for the other side to reach its check (or its lock)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "hub.db")
    else:
        with FreshPostgres() as pg:
            yield pg


@dataclass
class Hub:
    sessions: Any
    store: LocalBlobStore
    tmp: Path

    async def approved_segments(self, n: int) -> list[tuple[str, int]]:
        """``n`` stored, unlinked, old segments, each with a deletion request two people
        approved: (segment id, request id)."""
        out = []
        async with self.sessions() as s, s.begin():
            s.add(Device(device_id="rec-a", signing_key=bytes(32), officer_id="officer-7",
                         enrolled_at=START))
        prev = ZERO_HASH
        for seq in range(n):
            data = os.urandom(500)
            path = self.tmp / f"blob-{seq}"
            path.write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            ref = await self.store.put_file(path, digest, len(data))
            manifest = f"manifest rec-a {seq}".encode()
            start = START + dt.timedelta(minutes=10 * seq)
            async with self.sessions() as s, s.begin():
                s.add(Segment(
                    segment_id=f"rec-a-{seq}", device_id="rec-a", seq=seq,
                    officer_id="officer-7", start_at=start,
                    end_at=start + dt.timedelta(minutes=5), media_type="video/mp4",
                    length=len(data), sha256=digest, important=False, recovered=False,
                    clock_state="synced", clock_offset_ms=0, prev_hash=prev, manifest=manifest,
                    manifest_hash=hashlib.sha256(manifest).digest(), receipt=b"r",
                    stored_ref=ref, received_at=start + dt.timedelta(minutes=6)))
            prev = hashlib.sha256(manifest).digest()
            async with self.sessions() as s, s.begin():
                req = await request_deletion(s, f"rec-a-{seq}", "alice", "误录，无执法内容")
                await approve_deletion(s, req.id, "alice")
                await approve_deletion(s, req.id, "bob")
            out.append((f"rec-a-{seq}", req.id))
        return out

    async def delete(self, request_id: int, hold: Any = None) -> Any:
        return await execute_deletion(self.sessions, request_id, self.store, "carol", hold=hold)

    async def link(self, segment_id: str) -> Any:
        async with self.sessions() as s, s.begin():
            return await link_segment(s, segment_id, "case-1", "step-1", "user:dave", "现场录像")

    async def state(self, segment_id: str) -> tuple[int, bool]:
        """(active links, deletion recorded) of a segment, as committed."""
        async with self.sessions() as s:
            links = await s.scalar(select(func.count()).select_from(SegmentLink).where(
                SegmentLink.segment_id == segment_id, SegmentLink.removed_at.is_(None)))
            deleted = await s.get(SegmentDeletion, segment_id) is not None
        return int(links or 0), deleted


@pytest.fixture
async def hub(url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    engine = make_engine(url)
    await migrate(engine)
    try:
        yield Hub(sessionmaker(engine), LocalBlobStore(tmp_path / "store"), tmp_path)
    finally:
        await engine.dispose()


async def test_a_link_being_committed_stops_the_deletion(hub: Hub):
    ((segment_id, request_id),) = await hub.approved_segments(1)
    async with hub.sessions() as s:
        ref = (await s.get(Segment, segment_id)).stored_ref
    blob = hub.store.path_for(ref)
    async with hub.sessions() as s, s.begin():
        await link_segment(s, segment_id, "case-1", "step-1", "user:dave", "现场录像")
        # the link is checked and written but not committed; the deletion starts now
        deletion = asyncio.create_task(hub.delete(request_id))
        await asyncio.sleep(WAIT)
    with pytest.raises(DeletionRefused, match="已关联案件"):
        await deletion
    assert await hub.state(segment_id) == (1, False)
    assert blob.exists()


async def test_a_deletion_being_committed_stops_the_link(hub: Hub):
    ((segment_id, request_id),) = await hub.approved_segments(1)
    checked, go_on = asyncio.Event(), asyncio.Event()

    async def pause(session: Any, seg: str) -> bool:
        # called by execute_deletion after it read the segment's links, before it writes
        checked.set()
        await go_on.wait()
        return False

    deletion = asyncio.create_task(hub.delete(request_id, hold=pause))
    await asyncio.wait_for(checked.wait(), 30)
    link = asyncio.create_task(hub.link(segment_id))
    await asyncio.sleep(WAIT)
    assert not link.done(), "the link did not wait for the deletion in progress"
    go_on.set()
    record = await deletion
    assert record.segment_id == segment_id
    with pytest.raises(NotFound, match="已按保存期限删除"):
        await link
    assert await hub.state(segment_id) == (0, True)


async def test_simultaneous_links_and_deletions_never_both_succeed(hub: Hub):
    pairs = await hub.approved_segments(6)

    async def outcome(coro: Any) -> bool:
        try:
            await coro
        except (DeletionRefused, NotFound):
            return False
        return True

    for i, (segment_id, request_id) in enumerate(pairs):
        calls = [hub.delete(request_id), hub.link(segment_id)]
        if i % 2:
            calls.reverse()
        results = await asyncio.gather(*(outcome(c) for c in calls))
        assert sum(results) == 1, (segment_id, results)
        links, deleted = await hub.state(segment_id)
        assert (links, deleted) in ((1, False), (0, True)), (segment_id, links, deleted)
