"""Working-day calendar: statutory data, 调休, overrides, uncovered years, the override file."""

from __future__ import annotations

import json
from datetime import date

import pytest
from lerec.hub.policy import (
    Basis,
    CalendarConfigError,
    CalendarNotCovered,
    Override,
    PolicyError,
    WorkdayCalendar,
    load_override_table,
)
from lerec.hub.policy.workdays import ChineseCalendarSource

# The first year the installed chinesecalendar does not cover (2027 with 1.11).
UNCOVERED = next(y for y in range(2027, 2100) if not ChineseCalendarSource().covers(y))


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2024, 9, 27), True),  # Friday
        (date(2024, 9, 28), False),  # Saturday
        (date(2024, 9, 29), True),  # Sunday, 国庆调休上班
        (date(2024, 10, 1), False),  # 国庆节
        (date(2024, 10, 7), False),  # Monday, still 国庆假期
        (date(2024, 10, 12), True),  # Saturday, 国庆调休上班
        (date(2025, 1, 26), True),  # Sunday, 春节调休上班
        (date(2025, 1, 28), False),  # 除夕
        (date(2025, 2, 4), False),  # Tuesday, 春节假期
        (date(2025, 2, 8), True),  # Saturday, 春节调休上班
        (date(2026, 12, 31), True),  # last covered day
    ],
)
def test_statutory_days(day: date, working: bool) -> None:
    cal = WorkdayCalendar()
    assert cal.is_workday(day) is working
    assert cal.is_holiday(day) is not working
    assert cal.explain(day).basis is Basis.STATUTORY


def test_uncovered_year_is_an_error_with_a_chinese_message() -> None:
    cal = WorkdayCalendar()
    with pytest.raises(CalendarNotCovered) as info:
        cal.is_workday(date(UNCOVERED, 3, 3))  # a Wednesday in 2027: still not guessed
    assert info.value.year == UNCOVERED
    assert str(info.value) == (
        f"{UNCOVERED}年的法定节假日安排尚未录入，请在工作日历中补充该年度的调整"
    )
    assert isinstance(info.value, PolicyError)
    assert not cal.covers(UNCOVERED)


def test_2027_message_text() -> None:
    assert str(CalendarNotCovered(2027)) == (
        "2027年的法定节假日安排尚未录入，请在工作日历中补充该年度的调整"
    )


def test_years_before_the_data_are_not_covered_either() -> None:
    with pytest.raises(CalendarNotCovered):
        WorkdayCalendar().is_workday(date(2003, 6, 2))


def test_overrides_win_over_statutory_data() -> None:
    cal = WorkdayCalendar(
        {
            date(2024, 10, 1): Override(date(2024, 10, 1), True, "防汛值班", "党政办 张三"),
            date(2024, 9, 27): False,
        }
    )
    status = cal.explain(date(2024, 10, 1))
    assert status.working and status.basis is Basis.OVERRIDE
    assert (status.reason, status.set_by) == ("防汛值班", "党政办 张三")
    assert not cal.is_workday(date(2024, 9, 27))


def test_single_override_does_not_cover_a_year() -> None:
    cal = WorkdayCalendar({date(UNCOVERED, 1, 1): False})
    assert not cal.is_workday(date(UNCOVERED, 1, 1))
    with pytest.raises(CalendarNotCovered):
        cal.is_workday(date(UNCOVERED, 1, 4))


def _declared_year() -> WorkdayCalendar:
    y = UNCOVERED
    return WorkdayCalendar(
        {
            date(y, 2, 10): Override(date(y, 2, 10), False, "春节", "张三"),
            date(y, 2, 20): Override(date(y, 2, 20), True, "春节调休上班", "张三"),
        },
        covered_years={y},
    )


def test_declared_year_uses_weekday_rule_plus_overrides() -> None:
    cal = _declared_year()
    y = UNCOVERED
    assert cal.covers(y)
    monday = next(date(y, 3, d) for d in range(1, 8) if date(y, 3, d).weekday() == 0)
    assert cal.explain(monday).basis is Basis.WEEKDAY_RULE and cal.is_workday(monday)
    saturday = date(monday.year, monday.month, monday.day + 5)
    assert not cal.is_workday(saturday)
    assert not cal.is_workday(date(y, 2, 10))
    assert cal.is_workday(date(y, 2, 20))


def test_declaring_a_year_without_any_weekday_holiday_is_rejected() -> None:
    with pytest.raises(CalendarConfigError) as info:
        WorkdayCalendar(covered_years={UNCOVERED})
    assert f"{UNCOVERED}年" in str(info.value)


def test_declaring_a_statutory_year_needs_nothing() -> None:
    assert WorkdayCalendar(covered_years={2025}).is_workday(date(2025, 2, 8))


def test_override_keyed_under_another_date_is_rejected() -> None:
    with pytest.raises(CalendarConfigError):
        WorkdayCalendar({date(2024, 1, 2): Override(date(2024, 1, 3), False)})


def test_nth_workday_after_skips_the_start_day() -> None:
    cal = WorkdayCalendar()
    assert cal.nth_workday_after(date(2024, 9, 30), 1) == date(2024, 10, 8)
    assert cal.nth_workday_after(date(2024, 9, 27), 1) == date(2024, 9, 29)


YAML_TABLE = f"""\
covered_years: [{UNCOVERED}]
overrides:
  - date: {UNCOVERED}-02-10
    working: false
    reason: 春节
    set_by: 党政办 张三
  - date: {UNCOVERED}-02-20
    working: true
    reason: 春节调休上班
    set_by: 党政办 张三
"""


def test_load_yaml_table(tmp_path) -> None:
    path = tmp_path / "workdays.yaml"
    path.write_text(YAML_TABLE, encoding="utf-8")
    table = load_override_table(path)
    assert table.covered_years == {UNCOVERED}
    assert table.overrides[date(UNCOVERED, 2, 20)].set_by == "党政办 张三"
    cal = table.calendar()
    assert cal.is_workday(date(UNCOVERED, 2, 20))
    assert not cal.is_workday(date(UNCOVERED, 2, 10))


def test_load_json_table(tmp_path) -> None:
    path = tmp_path / "workdays.json"
    data = {
        "overrides": [{"date": "2024-10-08", "working": False, "reason": "停电", "set_by": "李四"}]
    }
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert not load_override_table(path).calendar().is_workday(date(2024, 10, 8))


@pytest.mark.parametrize(
    "text",
    [
        "overrides:\n  - {date: 2024-10-08, working: false, reason: x, set_by: y, extra: 1}\n",
        "overrides:\n  - {date: 2024-10-08, working: false, reason: '', set_by: y}\n",
        "overrides:\n  - {date: 2024-10-08, working: false, reason: x}\n",
        (
            "overrides:\n  - {date: 2024-10-08, working: false, reason: x, set_by: y}\n"
            "  - {date: 2024-10-08, working: true, reason: x, set_by: y}\n"
        ),
        "unknown_key: 1\n",
        "overrides: [\n",
    ],
)
def test_bad_tables_are_rejected_naming_the_file(tmp_path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarConfigError) as info:
        load_override_table(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(CalendarConfigError):
        load_override_table(tmp_path / "nope.yaml")


def test_each_day_is_decided_once_per_calendar() -> None:
    """A calendar is immutable, so it decides each day once (deadlines of many segments ask
    about the same few days), and an uncovered year is asked again every time: an error is
    never remembered as a decision."""

    class Counting(ChineseCalendarSource):
        def __init__(self) -> None:
            self.asked: list[date] = []

        def is_workday(self, day: date) -> bool:
            self.asked.append(day)
            return super().is_workday(day)

    source = Counting()
    cal = WorkdayCalendar(source=source)
    first = cal.nth_workday_after(date(2024, 9, 27), 2)
    asked = list(source.asked)
    assert first == date(2024, 9, 30)  # 29th: a Sunday made a working day (国庆调休)
    assert asked == [date(2024, 9, 28), date(2024, 9, 29), date(2024, 9, 30)]
    assert cal.nth_workday_after(date(2024, 9, 27), 2) == first
    assert source.asked == asked, "asked the source again"
    for _ in range(2):
        with pytest.raises(CalendarNotCovered):
            cal.is_workday(date(UNCOVERED, 3, 2))
