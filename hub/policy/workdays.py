"""Chinese working-day calendar: statutory data plus an administrator's override table.

How a day is decided, first rule that applies wins:

1. **Override** — the administrator's table says working or not (with a reason and who set
   it). Overrides win over everything, in every year: a township may close for a flood, or
   the package may be wrong.
2. **Statutory data** — if the ``chinesecalendar`` package covers the year, its answer,
   which knows public holidays and 调休 (weekends made into working days).
3. **Declared year** — if the administrator declared the year covered (``covered_years``),
   Monday–Friday are working days and Saturday/Sunday rest days; the administrator's
   overrides supply that year's holidays and 调休 weekends (rule 1).
4. Otherwise :class:`CalendarNotCovered` — never a silent weekday guess.

A few overrides in a year do **not** make the year covered: an undecided day in it still
raises. To stop a year being declared with its holidays forgotten, every declared year the
package does not cover must contain at least one rest-day override on a Monday–Friday
(春节 always has some), otherwise :class:`CalendarConfigError`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import Protocol

import chinese_calendar  # type: ignore[import-untyped,unused-ignore]

from .errors import CalendarConfigError, CalendarNotCovered, PolicyInputError

# Longest stretch of consecutive rest days we accept before assuming a broken calendar.
_MAX_SCAN_DAYS = 366


@dataclass(frozen=True)
class Override:
    """One administrator decision about one day."""

    day: date
    working: bool
    reason: str = ""
    set_by: str = ""


class Basis(enum.StrEnum):
    """Which rule decided a day."""

    OVERRIDE = "override"
    STATUTORY = "statutory"
    WEEKDAY_RULE = "weekday_rule"


@dataclass(frozen=True)
class DayStatus:
    """Whether ``day`` is a working day, and why."""

    day: date
    working: bool
    basis: Basis
    reason: str = ""
    set_by: str = ""


class WorkdayLookup(Protocol):
    """What deadline arithmetic needs from a calendar."""

    def is_workday(self, day: date) -> bool: ...


class HolidaySource(Protocol):
    """Statutory holiday data for some years."""

    def covers(self, year: int) -> bool: ...

    def is_workday(self, day: date) -> bool: ...


class ChineseCalendarSource:
    """:class:`HolidaySource` backed by the ``chinesecalendar`` package (State Council data)."""

    def covers(self, year: int) -> bool:
        return _package_covers(year)

    def is_workday(self, day: date) -> bool:
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            raise CalendarNotCovered(day.year) from None


@functools.cache
def _package_covers(year: int) -> bool:
    """Whether the installed ``chinesecalendar`` has ``year`` (its data is fixed per release;
    asked once per year, not once per day decided)."""
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


class WorkdayCalendar:
    """Working-day calendar; see the module docstring for the decision rules. Immutable: a
    changed override table is a new calendar (so each day is decided once per instance)."""

    def __init__(
        self,
        overrides: Mapping[date, bool | Override] = MappingProxyType({}),
        covered_years: Iterable[int] = (),
        *,
        source: HolidaySource | None = None,
    ) -> None:
        self._source: HolidaySource = source if source is not None else ChineseCalendarSource()
        self._overrides: Mapping[date, Override] = MappingProxyType(
            {day: _as_override(day, value) for day, value in overrides.items()}
        )
        self._covered_years = frozenset(covered_years)
        self._decided: dict[date, DayStatus] = {}
        for year in sorted(self._covered_years):
            if self._source.covers(year):
                continue
            if not any(
                o.day.year == year and not o.working and o.day.weekday() < 5
                for o in self._overrides.values()
            ):
                raise CalendarConfigError(
                    "covered_years",
                    f"已声明{year}年的工作日历已录入，但没有任何周一至周五的休息日调整"
                    "（如春节、国庆），请先录入该年度的法定节假日",
                )

    @property
    def overrides(self) -> Mapping[date, Override]:
        return self._overrides

    @property
    def covered_years(self) -> frozenset[int]:
        return self._covered_years

    def covers(self, year: int) -> bool:
        """True when every day of ``year`` can be decided without an override."""
        return year in self._covered_years or self._source.covers(year)

    def explain(self, day: date) -> DayStatus:
        """Decide ``day`` and say which rule decided it."""
        status = self._decided.get(day)
        if status is None:
            status = self._decided[day] = self._explain(day)
        return status

    def _explain(self, day: date) -> DayStatus:
        override = self._overrides.get(day)
        if override is not None:
            return DayStatus(
                day, override.working, Basis.OVERRIDE, override.reason, override.set_by
            )
        if self._source.covers(day.year):
            return DayStatus(day, self._source.is_workday(day), Basis.STATUTORY)
        if day.year in self._covered_years:
            return DayStatus(day, day.weekday() < 5, Basis.WEEKDAY_RULE)
        raise CalendarNotCovered(day.year)

    def is_workday(self, day: date) -> bool:
        return self.explain(day).working

    def is_holiday(self, day: date) -> bool:
        """True for any rest day (public holiday or ordinary weekend)."""
        return not self.is_workday(day)

    def nth_workday_after(self, day: date, n: int) -> date:
        return nth_workday_after(self, day, n)


def nth_workday_after(cal: WorkdayLookup, day: date, n: int) -> date:
    """The ``n``-th working day strictly after ``day`` (``day`` itself never counts)."""
    if n < 1:
        raise PolicyInputError(f"n must be at least 1, got {n}")
    found = 0
    current = day
    rest_run = 0
    while found < n:
        current += timedelta(days=1)
        if cal.is_workday(current):
            found += 1
            rest_run = 0
        else:
            rest_run += 1
            if rest_run > _MAX_SCAN_DAYS:
                raise PolicyInputError(f"no working day within {_MAX_SCAN_DAYS} days after {day}")
    return current


def _as_override(day: date, value: bool | Override) -> Override:
    if isinstance(value, Override):
        if value.day != day:
            raise CalendarConfigError(
                "overrides", f"{day} 的调整记录日期为 {value.day}，两者不一致"
            )
        return value
    return Override(day=day, working=bool(value))
