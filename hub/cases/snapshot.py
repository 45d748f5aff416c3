"""From the database to :class:`lerec.hub.rules.CaseSnapshot`, and the compliance summary.

The compliance checker is pure; this module resolves everything it needs: current record
fields, attachments with their 第二十七条 metadata, the clips linked to the case (through
:mod:`.links_adapter`) with their upload deadlines (第二十六条, working days).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.cases_models import Case, CaseAttachment, CaseRecord
from ..db.models import Segment
from ..db.types import utcnow
from ..oversight.calendar import load_calendar
from ..policy import CalendarNotCovered, PolicyError, WorkdayCalendar, upload_deadline
from ..rules import Attachment, CaseSnapshot, Clip, Finding, Record, Rulebook, Severity, evaluate
from . import links_adapter

log = logging.getLogger(__name__)


def media_kind(content_type: str) -> str:
    """A clip's MIME type as a rulebook medium id."""
    major = (content_type or "").split("/", 1)[0].lower()
    return {"video": "video", "audio": "audio", "image": "photo"}.get(major, "video")


def attachment_snapshot(a: CaseAttachment) -> Attachment:
    meta = {
        "method": a.method, "made_at": a.made_at.isoformat() if a.made_at else None,
        "maker": a.maker, "proves": a.proves,
    }
    return Attachment(f"att-{a.id}", a.media_type, meta, bool((a.transcript or "").strip()))


def clip_deadline(seg: Segment, rb: Rulebook, cal: WorkdayCalendar) -> dt.datetime | None:
    """The upload deadline of a clip hub/oversight has no deadline row for (None when the
    calendar does not cover the period: never a guess)."""
    rule = rb.deadlines.upload
    if rule.unit != "working_days":
        return None
    try:
        return upload_deadline(seg.end_at, cal, rule.amount)
    except (CalendarNotCovered, PolicyError):
        return None


@dataclass(frozen=True)
class LinkedClip:
    segment: Segment
    record_ids: tuple[int | None, ...]
    how: str
    transcript: str | None
    deadline: dt.datetime | None


async def linked_clips(session: AsyncSession, rb: Rulebook, case_id: int) -> list[LinkedClip]:
    """The clips linked to a case, grouped per segment, with the records they evidence."""
    return await clips_from_rows(session, rb, await links_adapter.linked_segments(session, case_id))


async def clips_from_rows(session: AsyncSession, rb: Rulebook, rows: Any) -> list[LinkedClip]:
    """(link, segment, deadline, transcript) rows -> one LinkedClip per segment. A segment
    without a stored deadline row gets one computed on the working-day calendar the hub uses
    (statutory data plus the administrator's 工作日历 table, read anew so an edit counts at
    once; read only when some segment needs it)."""
    cal = await load_calendar(session) if any(r[2] is None for r in rows) else None
    return group_clips(rb, rows, cal)


def group_clips(rb: Rulebook, rows: Any, cal: WorkdayCalendar | None) -> list[LinkedClip]:
    """:func:`clips_from_rows` with the calendar given (None: no segment lacks a deadline)."""
    by_seg: dict[str, list[links_adapter.Link]] = defaultdict(list)
    info: dict[str, tuple[Segment, dt.datetime | None, str | None]] = {}
    for link, seg, deadline, transcript in rows:
        by_seg[link.segment_id].append(link)
        info[link.segment_id] = (seg, deadline, transcript)
    out = []
    for sid, group in by_seg.items():
        seg, deadline, transcript = info[sid]
        if deadline is None and cal is not None:
            deadline = clip_deadline(seg, rb, cal)
        out.append(LinkedClip(seg, tuple(g.record_id for g in group), group[0].how,
                              transcript, deadline))
    out.sort(key=lambda c: (c.segment.start_at, c.segment.segment_id))
    return out


async def build_snapshot(
    session: AsyncSession, rb: Rulebook, case: Case,
    records: Sequence[CaseRecord] | None = None,
    attachments: Sequence[CaseAttachment] | None = None,
    clips: Sequence[LinkedClip] | None = None,
) -> CaseSnapshot:
    if records is None:
        records = list((await session.execute(
            select(CaseRecord).where(CaseRecord.case_id == case.id).order_by(CaseRecord.id)
        )).scalars())
    if attachments is None:
        attachments = list((await session.execute(
            select(CaseAttachment).where(CaseAttachment.case_id == case.id)
        )).scalars())
    if clips is None:
        clips = await linked_clips(session, rb, case.id)
    atts: dict[int | None, list[Attachment]] = defaultdict(list)
    for a in attachments:
        atts[a.record_id].append(attachment_snapshot(a))
    clip_ids: dict[int, list[str]] = defaultdict(list)
    for c in clips:
        for rid in c.record_ids:
            if rid is not None:
                clip_ids[rid].append(c.segment.segment_id)
    snap_records = tuple(
        Record(
            record_id=str(r.id), kind_id=r.kind_id, fields=json.loads(r.fields),
            created_at=r.created_at, attachments=tuple(atts.get(r.id, ())),
            clip_ids=tuple(clip_ids.get(r.id, ())),
        )
        for r in records
    )
    snap_clips = tuple(
        Clip(
            segment_id=c.segment.segment_id,
            media_kind=media_kind(c.segment.media_type),
            recorded_end=c.segment.end_at,
            uploaded_at=c.segment.received_at,
            upload_deadline=c.deadline,
            transcript_present=bool((c.transcript or "").strip()),
        )
        for c in clips
    )
    return CaseSnapshot(
        case_id=str(case.id),
        enforcement_type=case.enforcement_type,
        start_mode=case.start_mode,
        stage=case.stage,
        started_at=case.created_at,
        records=snap_records,
        clips=snap_clips,
        facts=frozenset(json.loads(case.facts or "[]")),
        not_started=case.not_started,
        execution_ended_at=case.execution_ended_at,
        archived_at=case.archived_at,
        archive_deadline=case.archive_deadline,
    )


def summarise(case: Case, findings: Sequence[Finding], now: dt.datetime) -> None:
    case.finding_errors = sum(1 for f in findings if f.severity == Severity.ERROR)
    case.finding_warnings = sum(1 for f in findings if f.severity == Severity.WARNING)
    case.findings_at = now


async def refresh_findings(
    session: AsyncSession, rb: Rulebook, case: Case, now: dt.datetime | None = None
) -> list[Finding]:
    """Evaluate the case and store its finding counts on the row (caller commits)."""
    now = now or utcnow()
    findings = evaluate(await build_snapshot(session, rb, case), rb, now)
    summarise(case, findings, now)
    return findings
