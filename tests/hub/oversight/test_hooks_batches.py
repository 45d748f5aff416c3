"""``IngestHooks.on_stored`` checks the segments that arrive together in shared transactions
(one calendar load and one commit for up to ``MAX_BATCH`` of them), and one bad segment in a
batch neither loses nor delays the others' checks."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from lerec.hub.db.models import Segment
from lerec.hub.db.oversight_models import SegmentDeadline
from lerec.hub.oversight import IngestHooks
from sqlalchemy import func, select

BASE = dt.datetime(2024, 5, 6, 0, 0, tzinfo=dt.UTC)


async def _stored(db: Any, devices: int, per_device: int) -> list[Segment]:
    segs = []
    for d in range(devices):
        dev = f"rec-{d}"
        await db.device(dev)
        for seq in range(per_device):
            segs.append(await db.segment(dev, seq, BASE + dt.timedelta(minutes=10 * seq)))
    return segs


async def _deadlines(db: Any) -> int:
    async with db.sessions() as s:
        return await s.scalar(select(func.count()).select_from(SegmentDeadline))


async def test_segments_stored_together_are_checked_in_shared_transactions(db):
    segs = await _stored(db, devices=4, per_device=5)
    hooks = IngestHooks(db.sessions)
    await asyncio.gather(*(hooks.on_stored(s) for s in segs))
    assert await _deadlines(db) == len(segs)
    # all twenty were queued before the checker's first turn
    assert hooks.batches == -(-len(segs) // IngestHooks.MAX_BATCH)
    assert hooks.batches < len(segs) / 2


async def test_a_failing_segment_does_not_hold_back_its_batch(db):
    segs = await _stored(db, devices=2, per_device=4)
    ghost = Segment(**{c.key: getattr(segs[0], c.key) for c in Segment.__table__.columns})
    ghost.segment_id = "never-stored"  # on_segment_stored raises LookupError for it
    hooks = IngestHooks(db.sessions)
    await asyncio.gather(*(hooks.on_stored(s) for s in [segs[0], ghost, *segs[1:]]))
    assert await _deadlines(db) == len(segs)  # every real one was checked all the same
