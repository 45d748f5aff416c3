"""The one module that knows where clip links and the oversight views live: hub/oversight.

Links are hub/oversight's ``segment_links`` (never deleted, unlinking marks them removed with
a reason; every link and unlink is an audit entry). A case is ``str(case.id)`` there and a
step is ``str(record.id)``; a clip linked to the case as a whole has step ``CASE_STEP``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from .. import oversight
from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.cases_models import ClipTranscript
from ..db.models import Segment
from ..db.oversight_models import SegmentDeadline, SegmentLink
from ..db.types import utcnow
from ..oversight.alerts import HUB
from ..oversight.alerts import resolved_alerts as list_resolved
from ..policy.deadlines import UploadStatus
from ..policy.linking import CaseStep

UNASSIGNED = "unassigned"
CASE_STEP = "case"
OVERSIGHT_AVAILABLE = True


@dataclass(frozen=True)
class Link:
    link_id: int
    segment_id: str
    case_id: int
    record_id: int | None
    how: str  # manual / auto
    by: str
    at: dt.datetime
    reason: str = ""


def _step(record_id: int | None) -> str:
    return CASE_STEP if record_id is None else str(record_id)


def _link(row: SegmentLink) -> Link:
    rid = int(row.step_id) if row.step_id.isdigit() else None
    return Link(row.id, row.segment_id, int(row.case_id), rid, row.method, row.created_by,
                row.created_at, row.reason)


async def link(
    session: AsyncSession, segment_id: str, case_id: int, record_id: int | None, actor: str,
    reason: str = "人工关联",
) -> bool:
    """Link a stored segment to a case (and one of its records). False if already linked."""
    try:
        await oversight.link_segment(session, segment_id, str(case_id), _step(record_id), actor,
                                     reason or "人工关联")
    except oversight.AlreadyLinked:
        return False
    return True


async def unlink(
    session: AsyncSession, segment_id: str, case_id: int, record_id: int | None, actor: str,
    reason: str = "人工解除关联",
) -> bool:
    rows = [r for r in await oversight.links_for_segment(session, segment_id)
            if r.case_id == str(case_id) and (record_id is None or r.step_id == _step(record_id))]
    for row in rows:
        await oversight.unlink(session, row.id, actor, reason or "人工解除关联")
    return bool(rows)


async def links_for_case(session: AsyncSession, case_id: int) -> list[Link]:
    return [_link(r) for r in await oversight.links_for_case(session, str(case_id))]


async def linked_segments(
    session: AsyncSession, case_id: int
) -> list[tuple[Link, Segment, dt.datetime | None, str | None]]:
    """Active links of a case with their segment, upload deadline and transcript: one query
    (the case page's hot path)."""
    q = (
        select(SegmentLink, Segment, SegmentDeadline.deadline, ClipTranscript.text)
        .join(Segment, Segment.segment_id == SegmentLink.segment_id)
        .outerjoin(SegmentDeadline, SegmentDeadline.segment_id == SegmentLink.segment_id)
        .outerjoin(ClipTranscript, ClipTranscript.segment_id == SegmentLink.segment_id)
        .where(SegmentLink.case_id == str(case_id), SegmentLink.removed_at.is_(None))
        .order_by(SegmentLink.id)
    )
    return [(_link(r[0]), r[1], r[2], r[3]) for r in (await session.execute(q)).all()]


async def cases_for_segment(session: AsyncSession, segment_id: str) -> list[int]:
    rows = await oversight.links_for_segment(session, segment_id)
    return sorted({int(r.case_id) for r in rows if r.case_id.isdigit()})


async def auto_link_step(session: AsyncSession, step: CaseStep, actor: str = "hub") -> list[str]:
    """Link the stored segments of the step's assignees recorded in its time window."""
    return [row.segment_id for row in await oversight.auto_link_step(session, step)]


async def deadlines(session: AsyncSession, segment_ids: Iterable[str]
                    ) -> dict[str, dt.datetime | None]:
    """第二十六条 deadlines as hub/oversight computed them at ingest (administrator's calendar
    included); segments it has no row for are absent."""
    ids = sorted(set(segment_ids))
    if not ids:
        return {}
    rows = await session.execute(select(SegmentDeadline.segment_id, SegmentDeadline.deadline)
                                 .where(SegmentDeadline.segment_id.in_(ids)))
    return {r[0]: r[1] for r in rows}


async def transcripts(session: AsyncSession, segment_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(segment_ids))
    if not ids:
        return {}
    rows = await session.execute(select(ClipTranscript.segment_id, ClipTranscript.text)
                                 .where(ClipTranscript.segment_id.in_(ids)))
    return {r[0]: r[1] for r in rows}


async def set_transcript(
    session: AsyncSession, segment_id: str, case_id: int, text: str, actor: str,
    source: str = "manual",
) -> bool:
    """Attach the 第二十七条 transcript of an audio clip linked to the case."""
    if case_id not in await cases_for_segment(session, segment_id):
        return False
    row = await session.get(ClipTranscript, segment_id)
    if row is None:
        session.add(ClipTranscript(segment_id=segment_id, text=text, source=source,
                                   by_actor=actor, at=utcnow()))
    else:
        row.text, row.source, row.by_actor, row.at = text, source, actor, utcnow()
    await session.flush()
    await record_event(
        session, EventType.RECORD_CHANGED, actor, [f"segment:{segment_id}", f"case:{case_id}"],
        {"what": "clip_transcript", "length": len(text)},
    )
    return True


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


async def gaps_and_overdue(session: AsyncSession, settings: Any = oversight.DEFAULT_SETTINGS
                           ) -> dict[str, dict[str, list[Any]]]:
    """Per device: open completeness alerts ('gaps') and not-uploaded runs past their
    第二十六条 deadline ('overdue')."""
    out: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"gaps": [], "overdue": []})
    for alert in await oversight.list_alerts(session, open_only=True):
        if alert.device_id:
            out[alert.device_id]["gaps"].append(alert)
    for item in await oversight.overdue_segments(session, settings=settings):
        out[item.device_id]["overdue"].append(item)
    return dict(out)


def _alert(a: Any) -> dict[str, Any]:
    return {"id": a.id, "kind": a.kind, "kind_zh": ALERT_KIND_ZH.get(a.kind, a.kind),
            "at": a.created_at, "device_id": a.device_id or "—", "message": a.message_zh,
            "officer_ids": [o for o in (a.officer_ids or "").split(",") if o],
            "first_seq": a.first_seq, "last_seq": a.last_seq,
            "resolved_at": a.resolved_at, "resolved_by": a.resolved_by,
            "resolved_note": a.resolved_note,
            "resolved_automatically": a.resolved_by == HUB}


#: The kinds of oversight alerts, for people.
ALERT_KIND_ZH = {
    "missing": "缺号",
    "not_uploaded": "未上传",
    "chain_broken": "哈希链断裂或记录被替换",
    "calendar_not_covered": "工作日历未录入",
}


async def alerts(session: AsyncSession) -> list[dict[str, Any]]:
    """Open oversight alerts (gaps, replaced segments, not uploaded, calendar) for people."""
    return [_alert(a) for a in await oversight.list_alerts(session, open_only=True)]


async def resolved_alerts(session: AsyncSession, limit: int = 50) -> list[dict[str, Any]]:
    """The most recently resolved oversight alerts, by the hub (the record arrived) or by a
    person (with the note saying why), newest first."""
    return [_alert(a) for a in await list_resolved(session, limit)]


#: How a 第二十六条 deadline item stands, for people.
DEADLINE_STATUS_ZH = {
    "overdue": "已逾期未上传",
    "at_risk": "即将逾期",
    "late": "逾期上传",
    "calendar_error": "无法计算期限",
}


def _deadline_item(item: Any) -> dict[str, Any]:
    res = item.resolution
    seqs = str(item.first_seq) + (f"–{item.last_seq}" if item.last_seq != item.first_seq else "")
    return {
        "device_id": item.device_id, "seqs": seqs, "first_seq": item.first_seq,
        "last_seq": item.last_seq, "officer_ids": list(item.officer_ids),
        "recording_end": item.recording_end, "recording_end_known": item.recording_end_known,
        "deadline": item.deadline, "status": item.status,
        "status_zh": DEADLINE_STATUS_ZH.get(item.status, item.status),
        "segment_id": item.segment_id, "error": item.deadline_error,
        "uploaded": item.segment_id is not None,
        # not stored, but an administrator resolved the alert of every number: who, when, why
        "handled": res is not None, "resolution_alert_id": res.alert_id if res else None,
        "resolved_by": res.by if res else None, "resolved_at": res.at if res else None,
        "resolution_note": res.note if res else None,
    }


async def upload_deadlines(
    session: AsyncSession, settings: Any = oversight.DEFAULT_SETTINGS,
    late_since: dt.datetime | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The 第二十六条 lists: recordings still on a recorder past their deadline ('overdue', with
    those whose deadline the calendar cannot compute), still on a recorder with little time
    left ('at_risk'), and stored ones that arrived after their deadline ('late', since
    ``late_since``: default 90 days). ``settings``: the hub's ``[oversight]`` settings. Runs
    an administrator handled stay in their list, with ``handled`` and the resolution."""
    now = utcnow()
    absent = await oversight.absent_items(session, now, settings)  # one read for both lists
    return {
        "overdue": [_deadline_item(i) for i in absent
                    if i.status in oversight.OVERDUE_STATUSES],
        "at_risk": [_deadline_item(i) for i in absent if i.status == UploadStatus.AT_RISK.value],
        "late": [_deadline_item(i) for i in await oversight.late_segments(
            session, late_since or now - dt.timedelta(days=90))],
    }
