"""Holds (保全): keep a segment from retention deletion while something may need it.

An unlinked segment is deleted after its retention period with four eyes
(:mod:`.retention`). Before that, a party may ask to see the recording (查阅, 第二十九条), or a
complaint, an administrative review or a lawsuit may turn on it: then an administrator places
a hold, with the reason. While any hold of a segment is active, :func:`.retention.decide`
keeps it (``access_hold``); placing a hold also closes an open deletion request of the
segment (its approvals were given on facts that no longer hold). A hold is released with a
reason; neither a hold nor its release is ever deleted, and both are audit entries.

Every action here takes the segment's row lock (:func:`.links.lock_segment`) like every
retention action, so a hold and the execution of a deletion of the same segment never both
succeed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.oversight_models import SegmentDeletion, SegmentHold
from ..db.types import utcnow
from .alerts import principal
from .errors import HoldRefused, NoteRequired, NotFound
from .links import close_deletion_requests, lock_segment

#: longest reason kept (the forms and the API bound it too)
MAX_REASON = 2000


def active_holds_stmt() -> Select[Any]:
    """The ids of segments with an active hold (a subquery for ``not_in``)."""
    return select(SegmentHold.segment_id).where(SegmentHold.released_at.is_(None))


async def is_held(session: AsyncSession, segment_id: str) -> bool:
    """Whether any hold of the segment is active (the retention ``HoldCheck``)."""
    return (await session.execute(
        select(SegmentHold.id).where(SegmentHold.segment_id == segment_id,
                                     SegmentHold.released_at.is_(None)).limit(1)
    )).first() is not None


async def active_holds(
    session: AsyncSession, segment_ids: Iterable[str] | None = None
) -> list[SegmentHold]:
    """Active holds, oldest first; only those of ``segment_ids`` if given."""
    q = select(SegmentHold).where(SegmentHold.released_at.is_(None))
    if segment_ids is not None:
        ids = sorted(set(segment_ids))
        if not ids:
            return []
        q = q.where(SegmentHold.segment_id.in_(ids))
    return list((await session.execute(q.order_by(SegmentHold.placed_at, SegmentHold.id)))
                .scalars())


async def released_holds(session: AsyncSession, limit: int = 200) -> list[SegmentHold]:
    """The most recently released holds, newest first."""
    return list((await session.execute(
        select(SegmentHold).where(SegmentHold.released_at.is_not(None))
        .order_by(SegmentHold.released_at.desc(), SegmentHold.id.desc()).limit(limit)
    )).scalars())


def _reason(text: str, action: str) -> str:
    text = text.strip()
    if not text:
        raise NoteRequired(action)
    return text[:MAX_REASON]


async def place_hold(
    session: AsyncSession, segment_id: str, placed_by: str, reason: str,
    now: dt.datetime | None = None,
) -> SegmentHold:
    """Hold ``segment_id`` with ``reason``; closes its open deletion request, if any.

    Refused for a segment already deleted by retention (nothing is left to keep: the page
    says so, with the deletion record), and for a second active hold by the same person (a
    double click); different people may each hold a segment, for their own reasons."""
    why = _reason(reason, "保全")
    now = now or utcnow()
    if await lock_segment(session, segment_id) is None:
        raise NotFound("记录", segment_id)
    if await session.get(SegmentDeletion, segment_id) is not None:
        raise HoldRefused(segment_id, "该记录已按保存期限删除，无法保全（删除记录仍可查看）")
    mine = (await session.execute(
        select(SegmentHold.id).where(SegmentHold.segment_id == segment_id,
                                     SegmentHold.placed_by == placed_by,
                                     SegmentHold.released_at.is_(None)).limit(1))).first()
    if mine is not None:
        raise HoldRefused(segment_id, f"您已保全该记录（保全 #{mine[0]}），无需重复保全")
    hold = SegmentHold(segment_id=segment_id, reason=why, placed_by=placed_by, placed_at=now)
    session.add(hold)
    await session.flush()
    await record_event(session, EventType.RECORD_CREATED, principal(placed_by),
                       [f"segment:{segment_id}", f"hold:{hold.id}"],
                       {"action": "hold_placed", "reason": why}, at=now)
    await close_deletion_requests(session, segment_id, principal(placed_by),
                                  f"记录已保全（保全 #{hold.id}）：{why}", now)
    return hold


async def release_hold(
    session: AsyncSession, hold_id: int, released_by: str, reason: str,
    now: dt.datetime | None = None,
) -> SegmentHold:
    """Release hold ``hold_id`` with ``reason``. The segment's retention period is not
    restarted: if it is over, it becomes a deletion candidate again (with four eyes)."""
    why = _reason(reason, "解除保全")
    now = now or utcnow()
    found = await session.get(SegmentHold, hold_id)
    if found is None:
        raise NotFound("保全", hold_id)
    await lock_segment(session, found.segment_id)  # (then the hold, in the one lock order)
    hold = (await session.execute(
        select(SegmentHold).where(SegmentHold.id == hold_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one()
    if hold.released_at is not None:
        raise HoldRefused(hold.segment_id, f"保全 #{hold_id} 已于此前解除，无需再次解除")
    hold.released_at, hold.released_by, hold.release_reason = now, released_by, why
    await session.flush()
    await record_event(session, EventType.RECORD_CHANGED, principal(released_by),
                       [f"segment:{hold.segment_id}", f"hold:{hold_id}"],
                       {"action": "hold_released", "reason": why}, at=now)
    return hold
