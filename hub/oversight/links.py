"""Links between stored segments and case steps (the evidence of a step, 第十一条 etc.).

Cases are owned by the case service; here they are plain string ids ``case_id`` and
``step_id``. A link is never deleted: unlinking marks it removed (who, when, why). Each manual
link or unlink, and each automatic link, is an audit entry (``link``/``unlink`` with subjects
``segment:<id>`` and ``case:<id>``).

Automatic linking (rules in :mod:`lerec.hub.policy.linking`): a segment links to the steps its
officer is assigned to whose time window overlaps the recording (with a tolerance). It runs
both ways — when a segment is stored (:func:`auto_link_segment`, with a :class:`StepSource`
the case service provides) and when a case step is recorded (:func:`auto_link_step`).
A link an administrator removed is never re-created automatically.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import lock_head, record_event
from ..db.models import Segment
from ..db.oversight_models import DeletionRequest, SegmentDeletion, SegmentLink
from ..db.types import utcnow
from ..policy.linking import CaseStep, decide_links
from ..policy.linking import Segment as PolicySegment
from .alerts import HUB, principal
from .completeness import _officer
from .errors import AlreadyLinked, AlreadyRemoved, NoteRequired, NotFound
from .settings import DEFAULT_SETTINGS, OversightSettings

log = logging.getLogger(__name__)

#: The public name of a link row.
Link = SegmentLink


class StepSource(Protocol):
    """What auto-linking needs from the case service: the steps assigned to an officer whose
    window overlaps ``[start, end]`` (open steps included)."""

    async def steps_for(
        self, session: AsyncSession, officer_id: str, start: dt.datetime, end: dt.datetime
    ) -> Sequence[CaseStep]: ...


def _subjects(segment_id: str, case_id: str) -> list[str]:
    return [f"segment:{segment_id}", f"case:{case_id}"]


async def _any_link(session: AsyncSession, segment_id: str, case_id: str, step_id: str,
                    active_only: bool) -> SegmentLink | None:
    q = select(SegmentLink).where(SegmentLink.segment_id == segment_id,
                                  SegmentLink.case_id == case_id, SegmentLink.step_id == step_id)
    if active_only:
        q = q.where(SegmentLink.removed_at.is_(None))
    return (await session.execute(q.limit(1))).scalar_one_or_none()


async def _deleted(session: AsyncSession, segment_id: str) -> bool:
    return await session.get(SegmentDeletion, segment_id) is not None


async def lock_segment(session: AsyncSession, segment_id: str) -> Segment | None:
    """The segment's row, locked until the transaction ends (``SELECT ... FOR UPDATE``).

    A new link and a retention deletion (:func:`..retention.execute_deletion`) of the same
    segment both lock this row *before* they check each other's rows, so on PostgreSQL (READ
    COMMITTED) the second waits for the first to commit and then sees its link or deletion:
    never both. SQLite ignores ``FOR UPDATE``; its single writer serialises them anyway.

    The audit head is locked first (:func:`..audit.log.lock_head`): both append audit entries
    in the same transaction, and so does everything that links automatically (a record's
    save appends before it links), so every transaction takes the two locks in one order."""
    await lock_head(session)
    return (await session.execute(
        select(Segment).where(Segment.segment_id == segment_id).with_for_update()
        .execution_options(populate_existing=True)
    )).scalar_one_or_none()


async def _add(
    session: AsyncSession, segment_id: str, case_id: str, step_id: str, method: str,
    reason: str, actor: str, now: dt.datetime,
) -> SegmentLink:
    link = SegmentLink(segment_id=segment_id, case_id=case_id, step_id=step_id, method=method,
                       reason=reason, created_by=actor, created_at=now)
    session.add(link)
    await session.flush()
    await record_event(session, EventType.LINK, principal(actor), _subjects(segment_id, case_id), {
        "link_id": link.id, "step_id": step_id, "method": method, "reason": reason,
    }, at=now)
    # case evidence is never deleted by retention: the hub closes the request
    await close_deletion_requests(session, segment_id, HUB,
                                  f"记录已关联案件 {case_id}，作为案卷证据不得删除", now)
    return link


async def close_deletion_requests(
    session: AsyncSession, segment_id: str, actor: str, reason: str, now: dt.datetime
) -> None:
    """Close (withdraw) the open deletion request of ``segment_id``, saying why in its audit
    entry, rather than leave it waiting for approvals that can no longer lead anywhere: the
    segment became case evidence (a link), or it is held (:mod:`.holds`)."""
    for req in (await session.execute(select(DeletionRequest).where(
            DeletionRequest.segment_id == segment_id, DeletionRequest.status == "open"))
            ).scalars():
        req.status, req.closed_at = "withdrawn", now
        await record_event(session, EventType.RECORD_CHANGED, actor,
                           [f"segment:{segment_id}", f"deletion_request:{req.id}"],
                           {"action": "deletion_withdrawn", "reason": reason}, at=now)


async def link_segment(
    session: AsyncSession,
    segment_id: str,
    case_id: str,
    step_id: str,
    actor: str,
    reason: str,
    now: dt.datetime | None = None,
) -> SegmentLink:
    """An administrator links a segment to a case step (manual link), with a reason."""
    if not reason.strip():
        raise NoteRequired("关联记录")
    if await lock_segment(session, segment_id) is None:
        raise NotFound("记录", segment_id)
    if await _deleted(session, segment_id):
        raise NotFound("记录（已按保存期限删除）", segment_id)
    if await _any_link(session, segment_id, case_id, step_id, active_only=True) is not None:
        raise AlreadyLinked(segment_id, case_id, step_id)
    return await _add(session, segment_id, case_id, step_id, "manual", reason.strip(), actor,
                      now or utcnow())


async def unlink(
    session: AsyncSession,
    link_id: int,
    actor: str,
    reason: str,
    now: dt.datetime | None = None,
) -> SegmentLink:
    """Mark a link removed (the row stays), with a reason; an audit entry."""
    if not reason.strip():
        raise NoteRequired("解除关联")
    link = await session.get(SegmentLink, link_id)
    if link is None:
        raise NotFound("关联", link_id)
    if link.removed_at is not None:
        raise AlreadyRemoved(link_id)
    now = now or utcnow()
    link.removed_at, link.removed_by, link.removed_reason = now, actor, reason.strip()
    await session.flush()
    await record_event(session, EventType.UNLINK, principal(actor),
                       _subjects(link.segment_id, link.case_id), {
                           "link_id": link.id, "step_id": link.step_id, "method": link.method,
                           "reason": reason.strip(),
                       }, at=now)
    return link


def _policy_segment(row: Segment) -> PolicySegment:
    return PolicySegment(row.device_id, _officer(row.officer_id), row.start_at, row.end_at)


async def _auto(
    session: AsyncSession, row: Segment, steps: Sequence[CaseStep], tolerance: dt.timedelta,
    now: dt.datetime,
) -> list[SegmentLink]:
    links: list[SegmentLink] = []
    locked = False
    for decision in decide_links(_policy_segment(row), steps, tolerance):
        step = decision.step
        if not decision.linked:
            continue
        if await _any_link(session, row.segment_id, step.case_id, step.step_id,
                           active_only=False) is not None:
            continue  # linked already, or removed by a person: never re-link automatically
        if not locked:  # as link_segment: lock, then make sure no deletion got there first
            locked = True
            if await lock_segment(session, row.segment_id) is None or await _deleted(
                    session, row.segment_id):
                return links
        links.append(await _add(session, row.segment_id, step.case_id, step.step_id, "auto",
                                decision.reason, HUB, now))
    return links


async def auto_link_segment(
    session: AsyncSession,
    segment_row: Segment,
    source: StepSource,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[SegmentLink]:
    """Link a newly stored segment to the steps of its officer that overlap it. A segment of
    an unassigned recorder is never linked automatically."""
    officer = _officer(segment_row.officer_id)
    if officer is None:
        return []
    tol = settings.link_tolerance
    steps = await source.steps_for(session, officer, segment_row.start_at - tol,
                                   segment_row.end_at + tol)
    return await _auto(session, segment_row, steps, tol, now or utcnow())


async def auto_link_step(
    session: AsyncSession,
    step: CaseStep,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[SegmentLink]:
    """Link a case step (just recorded or changed) to the stored segments of its assignees
    that overlap its window. Call it in the transaction that records the step."""
    if not step.assignees:
        return []
    tol = settings.link_tolerance
    q = select(Segment).where(Segment.officer_id.in_(sorted(step.assignees)),
                              Segment.end_at >= step.start - tol)
    if step.end is not None:
        q = q.where(Segment.start_at <= step.end + tol)
    now = now or utcnow()
    links: list[SegmentLink] = []
    for row in (await session.execute(q.order_by(Segment.start_at))).scalars().all():
        if not await _deleted(session, row.segment_id):
            links += await _auto(session, row, [step], tol, now)
    return links


async def links_for_case(
    session: AsyncSession, case_id: str, include_removed: bool = False
) -> list[SegmentLink]:
    q = select(SegmentLink).where(SegmentLink.case_id == case_id)
    if not include_removed:
        q = q.where(SegmentLink.removed_at.is_(None))
    return list((await session.execute(q.order_by(SegmentLink.id))).scalars())


async def links_for_segment(
    session: AsyncSession, segment_id: str, include_removed: bool = False
) -> list[SegmentLink]:
    q = select(SegmentLink).where(SegmentLink.segment_id == segment_id)
    if not include_removed:
        q = q.where(SegmentLink.removed_at.is_(None))
    return list((await session.execute(q.order_by(SegmentLink.id))).scalars())
