"""Legal deadlines: upload within 2 working days (第二十六条), archive within 30 days (第二十八条).

Upload deadline (第二十六条 "记录人员应当在2个工作日内将电子记录存储至执法信息系统"):

* The day the recording ended is day 0 and never counts, as for every period counted in
  days (《民法典》第二百零一条: 开始的当日不计入，自下一日开始计算). "Ended" means the local
  calendar date in Asia/Shanghai, not the UTC date: a clip ending at 00:30 Beijing time
  ended on that Beijing date although UTC still shows the day before.
* From the next day, working days are counted in the :class:`WorkdayCalendar` (statutory
  holidays, 调休 make-up working weekends, administrator overrides).
* The deadline is the end of the N-th working day, 24:00 local time, i.e. 00:00 local of the
  following day, returned as an aware UTC datetime. An upload at exactly that instant is on
  time.
* A period that runs into a year the calendar does not cover raises
  :class:`CalendarNotCovered`; it is never guessed.

Archive deadline (第二十八条 "在行政执法行为执行终结之日起30日内"): 30 natural days, the end
date not counted, so the last permitted day is ``execution_ended + 30 days``. If a calendar is
passed, a last day falling on a rest day moves to the next working day (《民法典》第二百零三条);
without one the plain natural-day date is returned (the stricter reading). A law with a
different period (第二十八条第一款后半句) is handled by ``days``.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ._time import LOCAL_TZ, require_aware
from .errors import PolicyInputError
from .workdays import WorkdayLookup, nth_workday_after

UPLOAD_WORKING_DAYS = 2  # 第二十六条
ARCHIVE_DAYS = 30  # 第二十八条
AT_RISK_WITHIN = timedelta(hours=24)


class UploadStatus(enum.StrEnum):
    ON_TIME = "on_time"  # uploaded no later than the deadline
    LATE = "late"  # uploaded after the deadline
    OVERDUE = "overdue"  # not uploaded, deadline passed
    AT_RISK = "at_risk"  # not uploaded, less than the at-risk window left
    PENDING = "pending"  # not uploaded, comfortably before the deadline


def upload_deadline(
    recording_end: datetime,
    cal: WorkdayLookup,
    working_days: int = UPLOAD_WORKING_DAYS,
    tz: str = LOCAL_TZ,
) -> datetime:
    """The instant (aware, UTC) by which a recording ending at ``recording_end`` must be stored."""
    require_aware(recording_end, "recording_end")
    if working_days < 1:
        raise PolicyInputError(f"working_days must be at least 1, got {working_days}")
    zone = ZoneInfo(tz)
    ended_on = recording_end.astimezone(zone).date()
    last_day = nth_workday_after(cal, ended_on, working_days)
    return end_of_local_day(last_day, zone)


def end_of_local_day(day: date, zone: ZoneInfo) -> datetime:
    """24:00 local of ``day`` (= 00:00 local of the next day) as an aware UTC datetime."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)


def classify(
    now: datetime,
    deadline: datetime,
    uploaded_at: datetime | None,
    at_risk_within: timedelta = AT_RISK_WITHIN,
) -> UploadStatus:
    """Upload status of one recording; ``UploadStatus`` compares equal to its string value.

    Uploaded: ``on_time`` if ``uploaded_at <= deadline`` else ``late`` (``now`` is irrelevant).
    Not uploaded: ``overdue`` once ``now > deadline``; ``at_risk`` when less than
    ``at_risk_within`` is left (the deadline instant itself included); else ``pending``.
    """
    require_aware(now, "now")
    require_aware(deadline, "deadline")
    if uploaded_at is not None:
        require_aware(uploaded_at, "uploaded_at")
        return UploadStatus.ON_TIME if uploaded_at <= deadline else UploadStatus.LATE
    if now > deadline:
        return UploadStatus.OVERDUE
    if deadline - now < at_risk_within:
        return UploadStatus.AT_RISK
    return UploadStatus.PENDING


def archive_deadline(
    execution_ended: date,
    days: int = ARCHIVE_DAYS,
    cal: WorkdayLookup | None = None,
) -> date:
    """Last day (inclusive) for forming and filing the case file after execution ended."""
    if days < 1:
        raise PolicyInputError(f"days must be at least 1, got {days}")
    last = execution_ended + timedelta(days=days)
    if cal is not None and not cal.is_workday(last):
        last = nth_workday_after(cal, last, 1)
    return last
