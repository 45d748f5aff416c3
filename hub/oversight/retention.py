"""Retention: deleting an unlinked segment after its retention period, with four eyes.

Flow (decisions by :func:`lerec.hub.policy.retention.decide`):

1. :func:`request_deletion` — someone asks, with a reason. Refused while the segment is kept
   (linked to a case — never deletable —, flagged important, under a hold (保全,
   :mod:`.holds`), or its retention period not over).
2. :func:`approve_deletion` — at least ``required_approvals`` (2) *different* people approve;
   the same person twice, a system principal, or (by default) the recording officer is refused.
3. :func:`execute_deletion` — when ``decide`` says ``delete``: a ``segment_deletions`` record
   (sha256, device, seq, the manifest, why, requester, approvers, time) and a ``deletion``
   audit entry are committed first; then the object leaves the blob store and
   ``blob_deleted_at`` is set. A crash in between leaves an object to be removed by
   :func:`purge_deleted_blobs`, never a deletion without a record.

The ``segments`` row (and its manifest) stays, so the hash chain still verifies across the hole
and the gap checker does not alert on an approved deletion.

Blob removal goes through :class:`Deleter`; every :class:`lerec.hub.storage.BlobStore` is one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.cases_models import CaseAttachment
from ..db.models import Segment
from ..db.oversight_models import (
    DeletionApproval,
    DeletionRequest,
    SegmentDeletion,
    SegmentLink,
)
from ..db.types import utcnow
from ..policy.retention import (
    Approval,
    RetentionAction,
    RetentionDecision,
    SegmentFacts,
    decide,
)
from ..storage.local import LocalBlobStore
from .alerts import principal
from .completeness import _officer
from .errors import DeletionRefused, DuplicateApproval, NoteRequired, NotFound
from .holds import active_holds, active_holds_stmt, is_held
from .links import lock_segment
from .settings import DEFAULT_SETTINGS, OversightSettings

log = logging.getLogger(__name__)

#: Does an access request (第二十九条) or dispute hold this segment? By default, an active
#: hold (保全) of :mod:`.holds`.
HoldCheck = Callable[[AsyncSession, str], Awaitable[bool]]


class Deleter(Protocol):
    """Removes one object from the blob store. Idempotent: an absent object is not an error."""

    async def delete(self, ref: str) -> None: ...


class LocalDeleter:
    """Kept for callers written before the stores had ``delete``: forwards to the store."""

    def __init__(self, store: LocalBlobStore) -> None:
        self.store = store

    async def delete(self, ref: str) -> None:
        await self.store.delete(ref)


async def segment_facts(
    session: AsyncSession, seg: Segment, hold: HoldCheck | None = None
) -> SegmentFacts:
    links = (await session.execute(
        select(SegmentLink.case_id, SegmentLink.removed_at)
        .where(SegmentLink.segment_id == seg.segment_id)
    )).all()
    removed = [r.removed_at for r in links if r.removed_at is not None]
    return SegmentFacts(
        segment_id=seg.segment_id, ended_at=seg.end_at, arrived_at=seg.received_at,
        unlinked_at=max(removed) if removed else None,
        linked_case_ids=frozenset(r.case_id for r in links if r.removed_at is None),
        officer_id=_officer(seg.officer_id), important=seg.important,
        access_hold=await (hold or is_held)(session, seg.segment_id),
    )


async def _approvals(session: AsyncSession, request: DeletionRequest) -> list[Approval]:
    rows = (await session.execute(
        select(DeletionApproval).where(DeletionApproval.request_id == request.id)
    )).scalars()
    return [Approval(request.segment_id, a.approver, a.approved_at) for a in rows]


async def retention_status(
    session: AsyncSession,
    segment_id: str,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
    hold: HoldCheck | None = None,
) -> RetentionDecision:
    """Keep / eligible / delete for one segment, counting approvals of its open request."""
    seg = await _segment(session, segment_id)
    req = await _open_request(session, segment_id)
    approvals = await _approvals(session, req) if req is not None else []
    return decide(await segment_facts(session, seg, hold), approvals, now or utcnow(),
                  settings.retention_policy())


async def _segment(session: AsyncSession, segment_id: str) -> Segment:
    seg = await session.get(Segment, segment_id)
    if seg is None:
        raise NotFound("记录", segment_id)
    if await session.get(SegmentDeletion, segment_id) is not None:
        raise DeletionRefused(segment_id, "该记录已删除")
    return seg


async def _open_request(session: AsyncSession, segment_id: str) -> DeletionRequest | None:
    return (await session.execute(
        select(DeletionRequest).where(DeletionRequest.segment_id == segment_id,
                                      DeletionRequest.status == "open")
    )).scalar_one_or_none()


async def request_deletion(
    session: AsyncSession,
    segment_id: str,
    requested_by: str,
    reason: str,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
    hold: HoldCheck | None = None,
) -> DeletionRequest:
    """Ask to delete a segment whose retention period is over. One open request per segment."""
    if not reason.strip():
        raise NoteRequired("申请删除")
    now = now or utcnow()
    # every retention action on a segment holds its row lock: two requests (a double click)
    # cannot both find no open one, nor an approval race a withdrawal or the deletion
    if await lock_segment(session, segment_id) is None:
        raise NotFound("记录", segment_id)
    seg = await _segment(session, segment_id)
    decision = decide(await segment_facts(session, seg, hold), [], now,
                      settings.retention_policy())
    if decision.action is RetentionAction.KEEP:
        raise DeletionRefused(segment_id, decision.reason_zh)
    if await _open_request(session, segment_id) is not None:
        raise DeletionRefused(segment_id, "已有待审批的删除申请，请勿重复申请")
    req = DeletionRequest(segment_id=segment_id, requested_by=requested_by,
                          reason=reason.strip(), requested_at=now, status="open")
    session.add(req)
    await session.flush()
    await record_event(session, EventType.RECORD_CREATED, principal(requested_by),
                       [f"segment:{segment_id}", f"deletion_request:{req.id}"],
                       {"action": "deletion_requested", "reason": reason.strip()}, at=now)
    return req


def recorded_it(seg: Segment, person: str, officer_id: str | None) -> bool:
    """Whether ``person`` (login name, and officer id 执法证号 if they have one) is the officer
    who recorded ``seg``: an unassigned recording was recorded by nobody."""
    recorded_by = _officer(seg.officer_id)
    return recorded_by is not None and recorded_by in (person, _officer(officer_id))


async def _locked_request(session: AsyncSession, request_id: int) -> DeletionRequest:
    """The request, read again once its segment's row is locked (see request_deletion)."""
    req = await session.get(DeletionRequest, request_id)
    if req is None:
        raise NotFound("删除申请", request_id)
    await lock_segment(session, req.segment_id)
    await session.refresh(req)
    return req


async def _ended(session: AsyncSession, req: DeletionRequest) -> DeletionRefused:
    """Why a request that is no longer open cannot be acted on (a link closes a request:
    :func:`.links.close_deletion_requests`)."""
    linked = await session.scalar(select(SegmentLink.id).where(
        SegmentLink.segment_id == req.segment_id, SegmentLink.removed_at.is_(None)).limit(1))
    if req.status == "withdrawn" and linked is not None:
        return DeletionRefused(req.segment_id, "记录已关联案件，作为案卷证据不得删除；该删除申请"
                               "已关闭")
    if req.status == "withdrawn":
        held = await active_holds(session, [req.segment_id])
        if held:
            return DeletionRefused(req.segment_id, f"记录已保全（保全 #{held[0].id}："
                                   f"{held[0].reason}），该删除申请已关闭")
    return DeletionRefused(req.segment_id, "该删除申请已结束")


async def approve_deletion(
    session: AsyncSession,
    request_id: int,
    approver: str,
    note: str = "",
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
    approver_officer_id: str | None = None,
) -> DeletionApproval:
    """One person approves a deletion request; an ``approval`` audit entry.
    ``approver_officer_id``: the approver's officer id (执法证号), if the approver is an
    officer: the recording officer may not approve (unless ``officer_may_approve``)."""
    now = now or utcnow()
    req = await _locked_request(session, request_id)
    if req.status != "open":
        raise await _ended(session, req)
    who = approver.strip()
    seg = await _segment(session, req.segment_id)
    if not who or who in settings.system_principals:
        raise DeletionRefused(req.segment_id, "删除审批须由具体人员作出，系统账号不能审批")
    if not settings.officer_may_approve and recorded_it(seg, who, approver_officer_id):
        raise DeletionRefused(req.segment_id, "录制该记录的执法人员不能审批删除自己的记录")
    dup = await session.scalar(select(DeletionApproval.id).where(
        DeletionApproval.request_id == request_id, DeletionApproval.approver == who))
    if dup is not None:
        raise DuplicateApproval(req.segment_id, who)
    approval = DeletionApproval(request_id=request_id, approver=who, approved_at=now,
                                note=note.strip())
    session.add(approval)
    await session.flush()
    await record_event(session, EventType.APPROVAL, principal(who),
                       [f"segment:{req.segment_id}", f"deletion_request:{request_id}"],
                       {"action": "deletion_approved", "note": note.strip()}, at=now)
    return approval


async def withdraw_request(
    session: AsyncSession, request_id: int, actor: str, reason: str,
    now: dt.datetime | None = None,
) -> DeletionRequest:
    if not reason.strip():
        raise NoteRequired("撤回删除申请")
    req = await _locked_request(session, request_id)
    if req.status != "open":
        raise await _ended(session, req)
    now = now or utcnow()
    req.status, req.closed_at = "withdrawn", now
    await session.flush()
    await record_event(session, EventType.RECORD_CHANGED, principal(actor),
                       [f"segment:{req.segment_id}", f"deletion_request:{request_id}"],
                       {"action": "deletion_withdrawn", "reason": reason.strip()}, at=now)
    return req


async def execute_deletion(
    sessions: Any,
    request_id: int,
    deleter: Deleter,
    actor: str,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
    hold: HoldCheck | None = None,
) -> SegmentDeletion:
    """Delete the segment of an approved request. Takes the session *factory*: the record and
    audit entry are committed before the object is removed from the store (see module doc).
    Raises :class:`DeletionRefused` (nothing changed) unless ``decide`` says ``delete``."""
    now = now or utcnow()
    async with sessions() as s, s.begin():
        req = await s.get(DeletionRequest, request_id)
        if req is None:
            raise NotFound("删除申请", request_id)
        # Lock the segment's row before reading its links: a concurrent link_segment locks
        # it too, so one of the two waits and then sees the other (never both commit).
        if await lock_segment(s, req.segment_id) is None:
            raise NotFound("记录", req.segment_id)
        await s.refresh(req)  # a concurrent execution or withdrawal may have closed it
        if req.status != "open":
            raise await _ended(s, req)
        seg = await _segment(s, req.segment_id)
        decision = decide(await segment_facts(s, seg, hold), await _approvals(s, req), now,
                          settings.retention_policy())
        if decision.action is not RetentionAction.DELETE:
            raise DeletionRefused(seg.segment_id, decision.reason_zh)
        record = SegmentDeletion(
            segment_id=seg.segment_id, request_id=req.id, device_id=seg.device_id, seq=seg.seq,
            officer_id=seg.officer_id, start_at=seg.start_at, end_at=seg.end_at,
            sha256=seg.sha256, stored_ref=seg.stored_ref, prev_hash=seg.prev_hash,
            manifest=seg.manifest, manifest_hash=seg.manifest_hash, why=req.reason,
            requested_by=req.requested_by, approved_by=",".join(sorted(decision.approvers)),
            deleted_by=actor, deleted_at=now, blob_note="",
        )
        s.add(record)
        req.status, req.closed_at = "deleted", now
        await s.flush()
        await record_event(s, EventType.DELETION, principal(actor), [
            f"segment:{seg.segment_id}", f"device:{seg.device_id}",
            f"deletion_request:{req.id}",
        ], {
            "seq": seg.seq, "sha256": seg.sha256, "stored_ref": seg.stored_ref,
            "manifest_hash": bytes(seg.manifest_hash).hex(), "why": req.reason,
            "requested_by": req.requested_by, "approved_by": sorted(decision.approvers),
            "decision": decision.reason_zh,
        }, at=now)
    log.info("segment %s deleted by %s (approved by %s)", record.segment_id, actor,
             record.approved_by)
    await _remove_blob(sessions, record.segment_id, deleter)
    async with sessions() as s:
        done: SegmentDeletion | None = await s.get(SegmentDeletion, record.segment_id)
    assert done is not None
    return done


async def _remove_blob(sessions: Any, segment_id: str, deleter: Deleter) -> None:
    async with sessions() as s:
        record = await s.get(SegmentDeletion, segment_id)
        assert record is not None
        ref = record.stored_ref
        # Content-addressed: another segment with identical content, or a case attachment
        # (an officer may upload the same clip to a case), keeps the object alive.
        sharing = await s.scalar(
            select(func.count()).select_from(Segment)
            .outerjoin(SegmentDeletion, SegmentDeletion.segment_id == Segment.segment_id)
            .where(Segment.stored_ref == ref, SegmentDeletion.segment_id.is_(None))
        )
        attached = await s.scalar(
            select(func.count()).select_from(CaseAttachment)
            .where(CaseAttachment.blob_ref == ref))
    note = ""
    if sharing:
        note = "内容与其他未删除的记录相同，存储对象保留"
    elif attached:
        note = "内容与案件附件相同，存储对象保留"
    else:
        try:
            await deleter.delete(ref)
        except Exception as exc:  # the record stands; the object goes at the next purge
            log.exception("could not remove object %s of deleted segment %s", ref, segment_id)
            async with sessions() as s, s.begin():
                record = await s.get(SegmentDeletion, segment_id)
                assert record is not None
                record.blob_note = (f"存储对象删除失败（{type(exc).__name__}），"
                                    "将在 lerec-hub 下次启动时自动重试")
            return
    async with sessions() as s, s.begin():
        record = await s.get(SegmentDeletion, segment_id)
        assert record is not None
        record.blob_deleted_at, record.blob_note = utcnow(), note


async def purge_deleted_blobs(sessions: Any, deleter: Deleter) -> int:
    """Finish deletions whose object is still in the store (a crash after the record was
    committed). Run at start-up; returns how many were finished."""
    async with sessions() as s:
        ids = list((await s.execute(select(SegmentDeletion.segment_id).where(
            SegmentDeletion.blob_deleted_at.is_(None)))).scalars())
    for segment_id in ids:
        await _remove_blob(sessions, segment_id, deleter)
    return len(ids)


@dataclasses.dataclass(frozen=True)
class RetentionCandidate:
    segment_id: str
    device_id: str
    seq: int
    officer_id: str | None
    ended_at: dt.datetime
    eligible_from: dt.datetime | None
    reason_zh: str
    start_at: dt.datetime | None = None
    length: int | None = None


async def deletion_candidates(
    session: AsyncSession,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
    hold: HoldCheck | None = None,
    limit: int = 500,
) -> list[RetentionCandidate]:
    """Stored segments whose retention period is over and that no case uses: an
    administrator may request their deletion. Nothing is deleted automatically."""
    now = now or utcnow()
    policy = settings.retention_policy()
    cutoff = now - policy.keep_unlinked_for
    active = select(SegmentLink.segment_id).where(SegmentLink.removed_at.is_(None))
    q = (select(Segment)
         .outerjoin(SegmentDeletion, SegmentDeletion.segment_id == Segment.segment_id)
         .where(SegmentDeletion.segment_id.is_(None), Segment.end_at <= cutoff,
                Segment.segment_id.not_in(active)))
    if policy.protect_important:  # (kept whatever their age: never fill the page's limit)
        q = q.where(Segment.important.is_(False))
    if policy.protect_access_hold:  # (likewise: held until released)
        q = q.where(Segment.segment_id.not_in(active_holds_stmt()))
    rows = (await session.execute(q.order_by(Segment.end_at).limit(limit))).scalars().all()
    if hold is None:  # held segments are not in ``rows`` (or holds do not count): no query each
        hold = _not_held
    out = []
    for seg in rows:
        d = decide(await segment_facts(session, seg, hold), [], now, policy)
        if d.action is not RetentionAction.KEEP:
            out.append(RetentionCandidate(seg.segment_id, seg.device_id, seg.seq,
                                          _officer(seg.officer_id), seg.end_at, d.eligible_from,
                                          d.reason_zh, seg.start_at, seg.length))
    return out


async def _not_held(_session: AsyncSession, _segment_id: str) -> bool:
    return False


async def deletions(session: AsyncSession, device_id: str | None = None) -> list[SegmentDeletion]:
    q = select(SegmentDeletion).order_by(SegmentDeletion.deleted_at)
    if device_id is not None:
        q = q.where(SegmentDeletion.device_id == device_id)
    return list((await session.execute(q)).scalars())
