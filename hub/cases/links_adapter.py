"""The one module that knows where clip links live.

hub/oversight (segment_links, ``auto_link_step``, ``links_for_case``, upload deadlines, gap
alerts) is being written; until it lands, links are kept in the interim table
``case_clip_links`` and the oversight views (gaps, overdue) are empty. When it lands only this
file changes. Every link and unlink is an audit entry (LINK / UNLINK).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.cases_models import ClipLink
from ..db.models import Segment
from ..db.types import utcnow
from ..policy.linking import DEFAULT_TOLERANCE, CaseStep, decide_links
from ..policy.linking import Segment as PolicySegment

UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class Link:
    segment_id: str
    case_id: int
    record_id: int | None
    how: str  # manual / auto
    by: str
    at: dt.datetime
    transcript: str | None = None


async def link(
    session: AsyncSession, segment_id: str, case_id: int, record_id: int | None, actor: str,
    how: str = "manual",
) -> bool:
    """Link a stored segment to a case (and one of its records). False if already linked."""
    exists = (
        await session.execute(
            select(ClipLink.id).where(
                ClipLink.segment_id == segment_id, ClipLink.case_id == case_id,
                ClipLink.record_id.is_(None) if record_id is None
                else ClipLink.record_id == record_id,
            )
        )
    ).first()
    if exists is not None:
        return False
    session.add(ClipLink(segment_id=segment_id, case_id=case_id, record_id=record_id, how=how,
                         by_actor=actor, at=utcnow()))
    await session.flush()
    await record_event(
        session, EventType.LINK, actor, [f"segment:{segment_id}", f"case:{case_id}"],
        {"record": record_id, "how": how},
    )
    return True


async def unlink(
    session: AsyncSession, segment_id: str, case_id: int, record_id: int | None, actor: str,
) -> bool:
    cond = [ClipLink.segment_id == segment_id, ClipLink.case_id == case_id]
    if record_id is not None:
        cond.append(ClipLink.record_id == record_id)
    result: Any = await session.execute(delete(ClipLink).where(*cond))
    if not result.rowcount:
        return False
    await record_event(
        session, EventType.UNLINK, actor, [f"segment:{segment_id}", f"case:{case_id}"],
        {"record": record_id},
    )
    return True


async def links_for_case(session: AsyncSession, case_id: int) -> list[Link]:
    rows = (
        await session.execute(
            select(ClipLink).where(ClipLink.case_id == case_id).order_by(ClipLink.at, ClipLink.id)
        )
    ).scalars()
    return [Link(r.segment_id, r.case_id, r.record_id, r.how, r.by_actor, r.at, r.transcript)
            for r in rows]


async def cases_for_segment(session: AsyncSession, segment_id: str) -> list[int]:
    rows = await session.execute(
        select(ClipLink.case_id).where(ClipLink.segment_id == segment_id).distinct()
    )
    return [int(r[0]) for r in rows]


async def auto_link_step(
    session: AsyncSession, step: CaseStep, actor: str = "hub",
    tolerance: dt.timedelta = DEFAULT_TOLERANCE,
) -> list[str]:
    """Link the stored segments of the step's assignees recorded in its time window; returns
    the newly linked segment ids (the decision is hub.policy.linking's)."""
    if not step.assignees:
        return []
    lo = step.start - tolerance - dt.timedelta(hours=12)  # segments are minutes long
    q = select(Segment).where(Segment.officer_id.in_(sorted(step.assignees)),
                              Segment.end_at >= step.start - tolerance)
    if step.end is not None:
        q = q.where(Segment.start_at <= step.end + tolerance)
    q = q.where(Segment.start_at >= lo) if step.end is None else q
    linked: list[str] = []
    for seg in (await session.execute(q.order_by(Segment.start_at))).scalars():
        officer = None if seg.officer_id in ("", UNASSIGNED) else seg.officer_id
        ps = PolicySegment(seg.device_id, officer, seg.start_at, max(seg.end_at, seg.start_at))
        if any(d.linked for d in decide_links(ps, [step], tolerance)):
            if await link(session, seg.segment_id, int(step.case_id), int(step.step_id),
                          actor, how="auto"):
                linked.append(seg.segment_id)
    return linked


async def candidate_segments(
    session: AsyncSession, officer_ids: Sequence[str], start: dt.datetime, end: dt.datetime,
    limit: int = 50,
) -> list[Segment]:
    """Segments a person may link by hand: by the case's officers (or unassigned) around the
    given window."""
    who = [Segment.officer_id.in_(list(officer_ids))] if officer_ids else []
    q = select(Segment).where(
        or_(*who, Segment.officer_id == UNASSIGNED),
        and_(Segment.start_at <= end, Segment.end_at >= start),
    )
    return list((await session.execute(q.order_by(Segment.start_at).limit(limit))).scalars())


async def set_transcript(
    session: AsyncSession, segment_id: str, case_id: int, text: str, actor: str
) -> bool:
    """Attach the 第二十七条 transcript of an audio clip (on every link of it to the case)."""
    rows = list((await session.execute(
        select(ClipLink).where(ClipLink.segment_id == segment_id, ClipLink.case_id == case_id)
    )).scalars())
    if not rows:
        return False
    for row in rows:
        row.transcript = text
    await record_event(
        session, EventType.RECORD_CHANGED, actor, [f"segment:{segment_id}", f"case:{case_id}"],
        {"what": "clip_transcript", "length": len(text)},
    )
    return True


async def gaps_and_overdue(session: AsyncSession) -> dict[str, Any]:
    """Per device: {'gaps': [...], 'overdue': [...]} from hub/oversight (empty until it lands)."""
    return {}


async def alerts(session: AsyncSession) -> list[dict[str, Any]]:
    """Oversight alerts (gaps, upload overdue) once hub/oversight lands."""
    return []


OVERSIGHT_AVAILABLE = False
