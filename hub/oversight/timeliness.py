"""Timeliness: the 第二十六条 upload deadline (2 working days after recording ended).

**Stored segments.** At ingest (:func:`record_deadline`, from ``on_segment_stored``) each
segment gets a ``segment_deadlines`` row: deadline from
:func:`lerec.hub.policy.deadlines.upload_deadline` on the database calendar
(:mod:`.calendar`), status ``on_time`` or ``late`` (arrival at the hub vs deadline). If the
period runs into a year the calendar does not cover, the deadline is NULL, ``deadline_error``
says so in Chinese, status is ``calendar_error`` and a ``calendar_not_covered`` alert is raised
(once per year); it is recomputed, and the alert resolved, when the administrator enters that
year (any calendar edit recomputes the deadlines it may move). Never a guess.

**Segments still on recorders.** The hub knows only their sequence numbers (from heartbeats,
or from later segments that did arrive) and not their recording end, so it uses the *latest
time the recording can have ended* and hence the latest deadline it can have:

* a number absent between arrived ones (``missing``) ended before the next arrived segment
  started: ``recording_end = start of the next arrived segment``;
* a number reported by a heartbeat but not arrived (``not_uploaded``) ended before the hub
  first received a heartbeat reporting it: ``recording_end = that heartbeat's arrival``.

Rule: **overdue** when ``now`` is past ``upload_deadline(recording_end)`` — then the segment is
overdue for certain, whatever its real end; **at risk** when less than ``within`` is left.
Items carry ``recording_end_known=False`` to say the end is such a bound. A number that was
never reported and has no later arrival is unknown to the hub and cannot be listed.

**Handled by an administrator.** A run whose absent-number alert an administrator resolved
(e.g. 记录仪丢失，已书面说明) stays in these lists with its status — the record never arrived —
and carries the :class:`~.absent.Resolution` (who, when, the note); ``handled`` says so. A run
only partly covered by resolved alerts is split (:mod:`.absent`): the handled part is marked,
the rest stays unresolved. The metrics count only the unresolved ones as overdue.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Device, Segment
from ..db.oversight_models import Alert, SegmentDeadline
from ..db.types import utcnow
from ..policy.deadlines import UploadStatus, classify, upload_deadline
from ..policy.errors import CalendarNotCovered
from ..policy.workdays import WorkdayCalendar
from .absent import Resolution, absent_runs
from .alerts import HUB, AlertKind, close_alert, raise_alert
from .calendar import load_calendar
from .completeness import _officer
from .settings import DEFAULT_SETTINGS, OversightSettings

log = logging.getLogger(__name__)

CALENDAR_ERROR = "calendar_error"


@dataclasses.dataclass(frozen=True)
class DeadlineItem:
    """One stored segment, or a run of sequence numbers still on a recorder, and its deadline."""

    device_id: str
    first_seq: int
    last_seq: int  # inclusive
    officer_ids: tuple[str, ...]
    recording_end: dt.datetime | None
    recording_end_known: bool  # False: ``recording_end`` is the latest it can be (see module)
    deadline: dt.datetime | None
    status: str  # UploadStatus value, or "calendar_error" (then ``deadline_error`` says why)
    segment_id: str | None = None  # stored segments only
    deadline_error: str | None = None
    #: not stored: an administrator resolved the alert of every number of the run (who, when,
    #: why); the numbers are still absent and listed, marked handled
    resolution: Resolution | None = None

    @property
    def handled(self) -> bool:
        return self.resolution is not None


def compute_deadline(
    cal: WorkdayCalendar, ended_at: dt.datetime, settings: OversightSettings = DEFAULT_SETTINGS
) -> tuple[dt.datetime | None, CalendarNotCovered | None]:
    try:
        return upload_deadline(ended_at, cal, settings.upload_working_days), None
    except CalendarNotCovered as exc:
        return None, exc


async def record_deadline(
    session: AsyncSession,
    segment: Segment,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
    cal: WorkdayCalendar | None = None,
) -> SegmentDeadline:
    """Compute and store the upload deadline of a stored segment (idempotent: recomputes)."""
    now = now or utcnow()
    cal = cal if cal is not None else await load_calendar(session)
    row = await session.get(SegmentDeadline, segment.segment_id)
    if row is None:
        row = SegmentDeadline(segment_id=segment.segment_id, ended_at=segment.end_at,
                              uploaded_at=segment.received_at, status=CALENDAR_ERROR,
                              computed_at=now)
        session.add(row)
    deadline, error = compute_deadline(cal, segment.end_at, settings)
    row.deadline, row.computed_at = deadline, now
    if error is None:
        assert deadline is not None
        row.status = classify(now, deadline, segment.received_at).value
        row.deadline_error, row.error_year = None, None
    else:
        row.status = CALENDAR_ERROR
        row.error_year = error.year
        row.deadline_error = (f"无法计算上传期限：{error}。在补充该年度工作日历之前，"
                              "该记录的上传期限暂缺")
    await session.flush()
    if error is not None:
        await _calendar_alert(session, segment, error, now)
    return row


async def _calendar_alert(
    session: AsyncSession, segment: Segment, error: CalendarNotCovered, now: dt.datetime
) -> None:
    prefix = f"calendar:{error.year}:"
    open_one = await session.scalar(select(Alert.id).where(
        Alert.kind == AlertKind.CALENDAR_NOT_COVERED.value, Alert.dedup_key.startswith(prefix),
        Alert.resolved_at.is_(None)))
    if open_one is not None:
        return
    # The year may have been covered and then withdrawn: its earlier alerts are resolved, and
    # a new one needs a key of its own (raise_alert never reopens a resolved key).
    key = prefix + segment.segment_id
    earlier = await session.scalar(select(func.count()).select_from(Alert).where(or_(
        Alert.dedup_key == key, Alert.dedup_key.startswith(key + ":", autoescape=True))))
    if earlier:
        key += f":{earlier}"
    officer = _officer(segment.officer_id)
    await raise_alert(
        session, kind=AlertKind.CALENDAR_NOT_COVERED, key=key,
        message_zh=(f"{error}。设备 {segment.device_id} 序号 {segment.seq} 的记录"
                    f"（执法人员：{officer or '未知'}）及其后同年度的记录暂无上传期限"),
        device_id=segment.device_id, officer_ids=[officer] if officer else [],
        window_start=segment.start_at, window_end=segment.end_at, first_seq=segment.seq,
        last_seq=segment.seq, segment_id=segment.segment_id, now=now,
    )


async def recompute_deadlines(
    session: AsyncSession,
    *,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
    ended_from: dt.datetime | None = None,
    ended_to: dt.datetime | None = None,
    cal: WorkdayCalendar | None = None,
) -> int:
    """Recompute deadlines of segments that ended in ``[ended_from, ended_to]`` and of every
    segment whose deadline could not be computed; resolve calendar alerts whose year is now
    covered. Returns the number of segments recomputed. Called by every calendar edit."""
    now = now or utcnow()
    cal = cal if cal is not None else await load_calendar(session)
    cond: ColumnElement[bool] = SegmentDeadline.deadline.is_(None)
    if ended_from is not None and ended_to is not None:
        cond = or_(cond, and_(SegmentDeadline.ended_at >= ended_from,
                              SegmentDeadline.ended_at <= ended_to))
    segs = (await session.execute(
        select(Segment).join(SegmentDeadline, SegmentDeadline.segment_id == Segment.segment_id)
        .where(cond)
    )).scalars().all()
    for seg in segs:
        await record_deadline(session, seg, now, settings, cal)
    for alert in (await session.execute(select(Alert).where(
        Alert.kind == AlertKind.CALENDAR_NOT_COVERED.value, Alert.resolved_at.is_(None)
    ))).scalars().all():
        m = re.match(r"calendar:(\d+):", alert.dedup_key)
        year = int(m.group(1)) if m else None
        left = await session.scalar(select(SegmentDeadline.segment_id).where(
            SegmentDeadline.error_year == year).limit(1))
        if left is None:
            await close_alert(session, alert, HUB, f"{year}年工作日历已录入，上传期限已重新计算",
                              now)
    return len(segs)


async def unchecked_segments(session: AsyncSession) -> list[Segment]:
    """Stored segments without a deadline row, by device and number: their
    ``on_segment_stored`` never completed (it writes that row in the same transaction as the
    completeness check), so neither their deadline nor their place in the chain was checked."""
    return list((await session.execute(
        select(Segment).outerjoin(SegmentDeadline, SegmentDeadline.segment_id == Segment.segment_id)
        .where(SegmentDeadline.segment_id.is_(None)).order_by(Segment.device_id, Segment.seq)
    )).scalars().all())


async def backfill_deadlines(
    session: AsyncSession,
    now: dt.datetime,
    settings: OversightSettings = DEFAULT_SETTINGS,
    segments: list[Segment] | None = None,
) -> list[Alert]:
    """Give every stored segment without a deadline row (or each of ``segments``) one (a
    missed ingest hook). Returns the alerts raised."""
    segs = await unchecked_segments(session) if segments is None else segments
    if not segs:
        return []
    cal = await load_calendar(session)
    before = await session.scalar(select(func.max(Alert.id)))
    for seg in segs:
        await record_deadline(session, seg, now, settings, cal)
    q = select(Alert).order_by(Alert.id)
    if before is not None:
        q = q.where(Alert.id > before)
    return list((await session.execute(q)).scalars())


async def absent_items(
    session: AsyncSession,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
    within: dt.timedelta | None = None,
) -> list[DeadlineItem]:
    """Every run of numbers still absent from an enrolled recorder, with its deadline and
    status (``overdue``, ``at_risk`` with less than ``within`` — default
    ``settings.at_risk_within`` — left, ``on_time``, or ``calendar_error``), and whether an
    administrator handled it (``resolution``; module doc). Bounded reads per recorder
    (:func:`.absent.absent_runs`, not its whole history); the 第二十六条 lists below and the
    metrics refresh take their items from here."""
    now = now or utcnow()
    within = within or settings.at_risk_within
    cal: WorkdayCalendar | None = None  # read only if something is absent
    officer_of = dict((await session.execute(select(Device.device_id, Device.officer_id))).all())
    # Segments and heartbeat reports come only from enrolled recorders (a device row).
    items: list[DeadlineItem] = []
    deadlines: dict[dt.datetime, tuple[dt.datetime | None, CalendarNotCovered | None]] = {}
    for device_id in sorted(officer_of):
        for run in await absent_runs(session, device_id, officer_of[device_id], now):
            if run.ended not in deadlines:
                if cal is None:
                    cal = await load_calendar(session)
                deadlines[run.ended] = compute_deadline(cal, run.ended, settings)
            deadline, error = deadlines[run.ended]
            status = CALENDAR_ERROR if deadline is None else \
                classify(now, deadline, None, within).value
            items.append(DeadlineItem(device_id, run.first, run.last, run.officers, run.ended,
                                      False, deadline, status, None,
                                      None if error is None else str(error), run.resolution))
    return items


#: statuses of :func:`absent_items` in the overdue list
OVERDUE_STATUSES = (UploadStatus.OVERDUE.value, CALENDAR_ERROR)


async def overdue_segments(
    session: AsyncSession,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[DeadlineItem]:
    """Segments not uploaded whose deadline has certainly passed (rule in the module doc),
    plus runs whose deadline the calendar cannot compute (status ``calendar_error``); those an
    administrator handled included, marked (``resolution``)."""
    items = await absent_items(session, now, settings)
    return [i for i in items if i.status in OVERDUE_STATUSES]


async def at_risk_segments(
    session: AsyncSession,
    now: dt.datetime | None = None,
    within: dt.timedelta | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[DeadlineItem]:
    """Segments not uploaded with less than ``within`` (default ``settings.at_risk_within``)
    left before their deadline; those an administrator handled included, marked."""
    items = await absent_items(session, now, settings, within)
    return [i for i in items if i.status == UploadStatus.AT_RISK.value]


async def late_segments(
    session: AsyncSession, since: dt.datetime | None = None
) -> list[DeadlineItem]:
    """Stored segments that arrived after their deadline (第二十六条 violations), and stored
    segments whose deadline could not be computed."""
    q = select(Segment, SegmentDeadline).join(
        SegmentDeadline, SegmentDeadline.segment_id == Segment.segment_id
    ).where(SegmentDeadline.status.in_([UploadStatus.LATE.value, CALENDAR_ERROR]))
    if since is not None:
        q = q.where(SegmentDeadline.ended_at >= since)
    out = []
    for seg, dl in (await session.execute(q.order_by(SegmentDeadline.ended_at))).all():
        officer = _officer(seg.officer_id)
        out.append(DeadlineItem(seg.device_id, seg.seq, seg.seq, (officer,) if officer else (),
                                seg.end_at, True, dl.deadline, dl.status, seg.segment_id,
                                dl.deadline_error))
    return out


async def deadline_of(session: AsyncSession, segment_id: str) -> SegmentDeadline | None:
    return await session.get(SegmentDeadline, segment_id)
