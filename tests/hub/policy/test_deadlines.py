"""第二十六条 upload deadlines with real 调休, classify(), 第二十八条 archive deadline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lerec.hub.policy import (
    CalendarNotCovered,
    Override,
    PolicyInputError,
    UploadStatus,
    WorkdayCalendar,
    archive_deadline,
    classify,
    upload_deadline,
)
from lerec.hub.policy.workdays import ChineseCalendarSource

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkdayCalendar()
UNCOVERED = next(y for y in range(2027, 2100) if not ChineseCalendarSource().covers(y))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def midnight_local(y: int, m: int, d: int) -> datetime:
    """00:00 Beijing time of the given date = 24:00 of the day before, in UTC."""
    return datetime(y, m, d, tzinfo=SH).astimezone(UTC)


@pytest.mark.parametrize(
    ("ended", "deadline"),
    [
        # Fri evening; Sat rest, Sun 9-29 调休 working (1), Mon 9-30 (2) -> 24:00 Mon.
        (local(2024, 9, 27, 19, 30), midnight_local(2024, 10, 1)),
        # Mon 9-30; 10-1..10-7 国庆, Tue 10-8 (1), Wed 10-9 (2).
        (local(2024, 9, 30, 10), midnight_local(2024, 10, 10)),
        # During the holiday itself.
        (local(2024, 10, 3, 15), midnight_local(2024, 10, 10)),
        # Thu 10-10; Fri 10-11 (1), Sat 10-12 调休 working (2).
        (local(2024, 10, 10, 9), midnight_local(2024, 10, 13)),
        # 2025 春节: Fri 1-24; Sat rest, Sun 1-26 调休 working (1), Mon 1-27 (2).
        (local(2025, 1, 24, 18), midnight_local(2025, 1, 28)),
        # Mon 1-27; 1-28..2-4 春节, Wed 2-5 (1), Thu 2-6 (2).
        (local(2025, 1, 27, 11), midnight_local(2025, 2, 7)),
        # Thu 2-6; Fri 2-7 (1), Sat 2-8 调休 working (2).
        (local(2025, 2, 6, 16), midnight_local(2025, 2, 9)),
        # Ordinary week: Tue -> Thu 24:00.
        (local(2024, 11, 5, 8), midnight_local(2024, 11, 8)),
    ],
)
def test_upload_deadline_with_tiaoxiu(ended: datetime, deadline: datetime) -> None:
    result = upload_deadline(ended, CAL)
    assert result == deadline
    assert result.tzinfo is UTC


def test_local_date_not_utc_date_decides_the_start_day() -> None:
    # Thu 23:59:59 Beijing = Thu 15:59:59 UTC: Fri (1), Sun 9-29 (2) -> 24:00 Sun 9-29.
    assert upload_deadline(datetime(2024, 9, 26, 15, 59, 59, tzinfo=UTC), CAL) == midnight_local(
        2024, 9, 30
    )
    # Fri 00:30 Beijing = Thu 16:30 UTC: the recording ended on Friday, not Thursday.
    assert upload_deadline(datetime(2024, 9, 26, 16, 30, tzinfo=UTC), CAL) == midnight_local(
        2024, 10, 1
    )


def test_deadline_is_sixteen_hundred_utc() -> None:
    assert upload_deadline(local(2024, 9, 27, 19, 30), CAL) == datetime(
        2024, 9, 30, 16, 0, tzinfo=UTC
    )


def test_other_input_timezones_are_converted() -> None:
    ended = local(2024, 9, 27, 19, 30).astimezone(timezone(timedelta(hours=-5)))
    assert upload_deadline(ended, CAL) == midnight_local(2024, 10, 1)


def test_working_days_is_configurable() -> None:
    assert upload_deadline(local(2024, 9, 27, 19), CAL, working_days=1) == midnight_local(
        2024, 9, 30
    )
    with pytest.raises(PolicyInputError):
        upload_deadline(local(2024, 9, 27, 19), CAL, working_days=0)


def test_naive_datetime_is_rejected() -> None:
    with pytest.raises(PolicyInputError):
        upload_deadline(datetime(2024, 9, 27, 19), CAL)


def test_uncovered_year_raises() -> None:
    with pytest.raises(CalendarNotCovered) as info:
        upload_deadline(local(UNCOVERED, 3, 3, 10), CAL)
    assert info.value.year == UNCOVERED


def test_period_running_into_an_uncovered_year_raises() -> None:
    last = UNCOVERED - 1
    with pytest.raises(CalendarNotCovered) as info:
        upload_deadline(local(last, 12, 31, 10), CAL)
    assert info.value.year == UNCOVERED


def test_override_table_covering_the_year_works() -> None:
    y = UNCOVERED
    new_year = date(y, 1, 1)
    cal = WorkdayCalendar(
        {new_year: Override(new_year, False, "元旦", "党政办")}, covered_years={y}
    )
    ended = local(y, 3, 3, 10)
    # Weekday rule: the second Monday–Friday day after 3 March, until its 24:00.
    days = [ended.date() + timedelta(days=i) for i in range(1, 10)]
    after = [d for d in days if d.weekday() < 5][1] + timedelta(days=1)
    assert upload_deadline(ended, cal) == midnight_local(after.year, after.month, after.day)
    if y == 2027:  # Wed 2027-03-03: Thu (1), Fri (2) -> 24:00 Fri = Sat 00:00 Beijing.
        assert upload_deadline(ended, cal) == datetime(2027, 3, 5, 16, 0, tzinfo=UTC)


def test_override_wins_in_deadline() -> None:
    # The township closes Mon 2024-09-30 (flood): Sun 9-29 (1), Tue 10-8 (2).
    cal = WorkdayCalendar({date(2024, 9, 30): Override(date(2024, 9, 30), False, "防汛", "张三")})
    assert upload_deadline(local(2024, 9, 27, 19), cal) == midnight_local(2024, 10, 9)


DEADLINE = datetime(2024, 9, 30, 16, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("now", "uploaded_at", "expected"),
    [
        (DEADLINE - 48 * H, DEADLINE - 47 * H, "on_time"),
        (DEADLINE + 48 * H, DEADLINE, "on_time"),  # exactly at 24:00 is still on time
        (DEADLINE + 48 * H, DEADLINE + timedelta(seconds=1), "late"),
        (DEADLINE + timedelta(seconds=1), None, "overdue"),
        (DEADLINE, None, "at_risk"),
        (DEADLINE - 23 * H, None, "at_risk"),
        (DEADLINE - 24 * H, None, "pending"),  # exactly 24 h left: not yet at risk
        (DEADLINE - 72 * H, None, "pending"),
    ],
)
def test_classify(now: datetime, uploaded_at: datetime | None, expected: str) -> None:
    status = classify(now, DEADLINE, uploaded_at)
    assert status == expected
    assert isinstance(status, UploadStatus)


def test_classify_at_risk_window_is_configurable() -> None:
    assert classify(DEADLINE - 30 * H, DEADLINE, None, at_risk_within=48 * H) == "at_risk"
    assert classify(DEADLINE - 10 * H, DEADLINE, None, at_risk_within=6 * H) == "pending"


def test_classify_rejects_naive() -> None:
    with pytest.raises(PolicyInputError):
        classify(datetime(2024, 1, 1), DEADLINE, None)


@pytest.mark.parametrize(
    ("ended", "kwargs", "expected"),
    [
        (date(2024, 9, 1), {}, date(2024, 10, 1)),  # natural days, holiday or not
        (date(2024, 12, 15), {}, date(2025, 1, 14)),
        (date(2024, 9, 1), {"days": 15}, date(2024, 9, 16)),
        # With a calendar, a rest-day last day moves to the next working day (民法典 203).
        (date(2024, 9, 1), {"cal": CAL}, date(2024, 10, 8)),
        (date(2024, 9, 2), {"cal": CAL}, date(2024, 10, 8)),
        (date(2024, 8, 31), {"cal": CAL}, date(2024, 9, 30)),
    ],
)
def test_archive_deadline(ended: date, kwargs: dict, expected: date) -> None:
    assert archive_deadline(ended, **kwargs) == expected


utc_instants = st.datetimes(min_value=datetime(2004, 1, 1), max_value=datetime(2026, 11, 30)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@settings(max_examples=300, deadline=None)
@given(ended=utc_instants, n=st.integers(min_value=1, max_value=5))
def test_deadline_properties(ended: datetime, n: int) -> None:
    deadline = upload_deadline(ended, CAL, working_days=n)
    assert deadline > ended
    local_deadline = deadline.astimezone(SH)
    assert local_deadline.time() == datetime.min.time()  # 24:00 of the previous local day
    last_day = local_deadline.date() - timedelta(days=1)
    assert CAL.is_workday(last_day)
    ended_on = ended.astimezone(SH).date()
    between = [ended_on + timedelta(days=i) for i in range(1, (last_day - ended_on).days + 1)]
    assert sum(CAL.is_workday(d) for d in between) == n


@settings(max_examples=200, deadline=None)
@given(a=utc_instants, b=utc_instants)
def test_deadline_is_monotonic(a: datetime, b: datetime) -> None:
    early, late = sorted((a, b))
    assert upload_deadline(early, CAL) <= upload_deadline(late, CAL)
