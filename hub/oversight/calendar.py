"""The administrator's working-day calendar in the database.

``calendar_overrides`` holds decisions about single days (holidays, 调休 working weekends, a
closure for a flood) and ``calendar_years`` the years entered completely; together with the
``chinesecalendar`` package they make the :class:`WorkdayCalendar` every deadline is computed
with (rules in :mod:`lerec.hub.policy.workdays`). Every edit is an audit entry
(``config_changed``), is checked by building the calendar (an inconsistent table raises
:class:`CalendarConfigError` with a Chinese message, and the caller's transaction should be
rolled back), and recomputes the upload deadlines it may move.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.oversight_models import CalendarOverride, CalendarYear
from ..db.types import utcnow
from ..policy.workdays import Override, WorkdayCalendar
from .alerts import principal
from .errors import NoteRequired, NotFound
from .settings import DEFAULT_SETTINGS, OversightSettings

# Deadlines of segments that ended this long before an edited day may move with it.
_AFFECTED_BEFORE = dt.timedelta(days=40)


async def load_calendar(session: AsyncSession) -> WorkdayCalendar:
    """The working-day calendar: statutory data plus the administrator's tables."""
    overrides = {
        o.day: Override(o.day, o.working, o.reason, o.set_by)
        for o in (await session.execute(select(CalendarOverride))).scalars()
    }
    years = (await session.execute(select(CalendarYear.year))).scalars()
    return WorkdayCalendar(overrides, years)


async def list_overrides(session: AsyncSession, year: int | None = None) -> list[CalendarOverride]:
    q = select(CalendarOverride).order_by(CalendarOverride.day)
    if year is not None:
        q = q.where(CalendarOverride.day >= dt.date(year, 1, 1),
                    CalendarOverride.day <= dt.date(year, 12, 31))
    return list((await session.execute(q)).scalars())


async def list_covered_years(session: AsyncSession) -> list[CalendarYear]:
    return list((await session.execute(select(CalendarYear).order_by(CalendarYear.year))).scalars())


async def set_override(
    session: AsyncSession,
    day: dt.date,
    working: bool,
    reason: str,
    actor: str,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> CalendarOverride:
    """Decide that ``day`` is a working day (``working=True``, e.g. 调休上班) or a rest day."""
    if not reason.strip():
        raise NoteRequired("设置工作日历")
    now = now or utcnow()
    row = await session.get(CalendarOverride, day)
    before = None if row is None else {"working": row.working, "reason": row.reason}
    if row is None:
        row = CalendarOverride(day=day, working=working, reason=reason.strip(), set_by=actor,
                               set_at=now)
        session.add(row)
    else:
        row.working, row.reason, row.set_by, row.set_at = working, reason.strip(), actor, now
    await session.flush()
    await _changed(session, actor, now, {
        "action": "calendar_override_set", "day": day.isoformat(), "working": working,
        "reason": reason.strip(), "before": before,
    }, day, settings)
    return row


async def remove_override(
    session: AsyncSession,
    day: dt.date,
    reason: str,
    actor: str,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> None:
    """Drop the administrator's decision about ``day`` (the statutory data decides again)."""
    if not reason.strip():
        raise NoteRequired("删除工作日历调整")
    row = await session.get(CalendarOverride, day)
    if row is None:
        raise NotFound("工作日历调整", day.isoformat())
    before = {"working": row.working, "reason": row.reason, "set_by": row.set_by}
    await session.delete(row)
    await session.flush()
    await _changed(session, actor, now or utcnow(), {
        "action": "calendar_override_removed", "day": day.isoformat(), "reason": reason.strip(),
        "before": before,
    }, day, settings)


async def declare_year(
    session: AsyncSession,
    year: int,
    actor: str,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> CalendarYear:
    """Declare ``year`` entered completely: enter its holidays and 调休 days first, otherwise
    :class:`CalendarConfigError` (a year without any weekday rest day is surely incomplete)."""
    now = now or utcnow()
    row = await session.get(CalendarYear, year)
    if row is None:
        row = CalendarYear(year=year, set_by=actor, set_at=now)
        session.add(row)
        await session.flush()
    # Declaring only decides days no rule decided before: only deadlines that could not be
    # computed can change (not the whole year's segments, read one by one).
    await _changed(session, actor, now, {"action": "calendar_year_declared", "year": year},
                   dt.date(year, 1, 1), settings, errors_only=True)
    return row


async def withdraw_year(
    session: AsyncSession,
    year: int,
    reason: str,
    actor: str,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> None:
    if not reason.strip():
        raise NoteRequired("撤销年度工作日历")
    row = await session.get(CalendarYear, year)
    if row is None:
        raise NotFound("已录入的年度", year)
    await session.delete(row)
    await session.flush()
    await _changed(session, actor, now or utcnow(), {
        "action": "calendar_year_withdrawn", "year": year, "reason": reason.strip(),
    }, dt.date(year, 1, 1), settings, whole_year=True)


async def _changed(
    session: AsyncSession,
    actor: str,
    now: dt.datetime,
    details: dict[str, object],
    day: dt.date,
    settings: OversightSettings,
    whole_year: bool = False,
    errors_only: bool = False,
) -> None:
    from .timeliness import recompute_deadlines

    cal = await load_calendar(session)  # raises CalendarConfigError if the table is inconsistent
    await record_event(session, EventType.CONFIG_CHANGED, principal(actor), ["config:calendar"],
                       details, at=now)  # type: ignore[arg-type]
    if errors_only:
        await recompute_deadlines(session, now=now, settings=settings, cal=cal)
        return
    # (a run of holidays can stretch N working days over more than N calendar days)
    before = max(_AFFECTED_BEFORE, dt.timedelta(days=3 * settings.upload_working_days + 30))
    start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC) - before
    end = dt.datetime.combine(dt.date(day.year, 12, 31) if whole_year else day, dt.time(0),
                              tzinfo=dt.UTC) + dt.timedelta(days=2)
    await recompute_deadlines(session, now=now, settings=settings, ended_from=start,
                              ended_to=end, cal=cal)
