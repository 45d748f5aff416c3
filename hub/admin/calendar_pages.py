"""The working-day calendar (工作日历) pages and API: the statutory data of ``chinesecalendar``
plus the administrator's override table, the years entered by hand, and the years no deadline
can be computed in yet (第二十六条: 2 working days).

Every edit goes through :mod:`lerec.hub.oversight.calendar`, which checks the table, writes the
audit entry, recomputes the upload deadlines the edit may move and resolves the
``calendar_not_covered`` alerts of a year once no deadline of it is left uncomputed. Afterwards
the open cases' findings are re-evaluated, so the case list shows the new deadlines at once.
"""

from __future__ import annotations

import calendar as stdcal
import datetime as dt
import functools
import logging
import re
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from ..cases.errors import InvalidInput
from ..cases.forms import CHINA
from ..db.cases_models import User
from ..db.oversight_models import Alert, CalendarOverride, CalendarYear, SegmentDeadline
from ..oversight import calendar as cal_service
from ..oversight.alerts import AlertKind
from ..oversight.errors import OversightError
from ..oversight.timeliness import CALENDAR_ERROR
from ..policy.errors import CalendarConfigError, CalendarNotCovered
from ..policy.workdays import Basis, ChineseCalendarSource, WorkdayCalendar
from . import views
from .pages import _form_str, back_to, render
from .security import NEED, Ctx

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["v1"])

MIN_YEAR, MAX_YEAR = 2000, 2100
WEEKDAY_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
BASIS_ZH = {Basis.OVERRIDE: "调整", Basis.STATUTORY: "法定", Basis.WEEKDAY_RULE: "按周一至周五"}
WHAT_TO_DO = ("请按国务院办公厅发布的该年度部分节假日安排通知，逐日录入法定节假日（元旦、春节、清明节、"
              "劳动节、端午节、中秋节、国庆节，工作日放假的日期设为「休息日」）和调休上班的周末"
              "（设为「工作日」），然后点击「声明该年度已录入」。")
_ALERT_YEAR = re.compile(r"calendar:(\d+):")


# -- what the page and the API show -------------------------------------------------------


@functools.cache
def package_years() -> tuple[int, ...]:
    """The years the installed ``chinesecalendar`` has statutory data for (fixed per
    release)."""
    source = ChineseCalendarSource()
    return tuple(y for y in range(MIN_YEAR, MAX_YEAR + 1) if source.covers(y))


def package_version() -> str:
    try:
        return metadata.version("chinesecalendar")
    except metadata.PackageNotFoundError:  # pragma: no cover - it is a dependency
        return "?"


def years_label(years: tuple[int, ...]) -> str:
    return f"{years[0]}–{years[-1]}年" if years else "（无）"


def this_year() -> int:
    return dt.datetime.now(CHINA).year


@dataclass(frozen=True)
class Uncovered:
    """A year the calendar does not cover although deadlines need it (or soon will)."""

    year: int
    deadlines: int  # stored segments whose deadline cannot be computed
    open_alerts: int  # open calendar_not_covered alerts of the year
    upcoming: bool  # no deadline needs it yet: this year or the next one

    @property
    def message(self) -> str:
        if self.upcoming:
            when = "本年度" if self.year == this_year() else f"自{self.year}年1月1日起，"
            return (f"{self.year}年工作日历尚未录入：{when}音像记录的上传期限"
                    "（第二十六条：2个工作日）将无法计算。")
        text = f"{self.year}年工作日历尚未录入：{self.deadlines} 条音像记录的上传期限无法计算"
        if self.open_alerts:
            text += f"（{self.open_alerts} 条预警未处理）"
        return text + "。"


async def uncovered_years(ctx: Ctx, cal: WorkdayCalendar) -> list[Uncovered]:
    """Years deadlines need and the calendar does not cover, with what waits for each; plus
    this year and the next if they are not covered (entered before anything errors)."""
    db = ctx.db
    counts: dict[int, int] = {}
    for year, n in (await db.execute(
            select(SegmentDeadline.error_year, func.count())
            .where(SegmentDeadline.status == CALENDAR_ERROR)
            .group_by(SegmentDeadline.error_year))).all():
        if year is not None:
            counts[year] = n
    alerts: dict[int, int] = {}
    for key in (await db.execute(select(Alert.dedup_key).where(
            Alert.kind == AlertKind.CALENDAR_NOT_COVERED.value,
            Alert.resolved_at.is_(None)))).scalars():
        m = _ALERT_YEAR.match(key)
        if m:
            alerts[int(m.group(1))] = alerts.get(int(m.group(1)), 0) + 1
    out = [Uncovered(y, counts.get(y, 0), alerts.get(y, 0), False)
           for y in sorted(set(counts) | set(alerts))]
    used = {u.year for u in out}
    out += [Uncovered(y, 0, 0, True) for y in (this_year(), this_year() + 1)
            if y not in used and not cal.covers(y)]
    return out


def override_json(o: CalendarOverride) -> dict[str, Any]:
    return {"day": o.day.isoformat(), "weekday": WEEKDAY_ZH[o.day.weekday()],
            "working": o.working, "reason": o.reason, "set_by": o.set_by,
            "set_at": o.set_at.isoformat() if o.set_at else None}


def year_json(y: CalendarYear) -> dict[str, Any]:
    return {"year": y.year, "set_by": y.set_by,
            "set_at": y.set_at.isoformat() if y.set_at else None}


@dataclass(frozen=True)
class Day:
    day: dt.date
    working: bool | None  # None: the calendar cannot decide it
    basis: str
    reason: str


def month_grid(cal: WorkdayCalendar, year: int, month: int) -> list[list[Day | None]]:
    """Weeks (Monday first) of one month, each day decided by ``cal`` with its basis."""
    weeks: list[list[Day | None]] = []
    for week in stdcal.Calendar().monthdatescalendar(year, month):
        row: list[Day | None] = []
        for d in week:
            if d.month != month:
                row.append(None)
                continue
            try:
                s = cal.explain(d)
                row.append(Day(d, s.working, BASIS_ZH[s.basis], s.reason))
            except CalendarNotCovered:
                row.append(Day(d, None, "未录入", ""))
        weeks.append(row)
    return weeks


def year_or_none(raw: str | int | None) -> int | None:
    """A year in the supported range written in ASCII digits ("²" is a digit to Python), or
    None."""
    text = str(raw or "").strip()
    if not (text.isascii() and text.isdecimal()) or not MIN_YEAR <= int(text) <= MAX_YEAR:
        return None
    return int(text)


def _year(raw: str | int | None) -> int:
    year = year_or_none(raw)
    if year is None:
        raise InvalidInput(f"「年度」应为 {MIN_YEAR}–{MAX_YEAR} 之间的年份。")
    return year


def _day(raw: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput("「日期」缺失或格式不正确（应为 年-月-日，如 2027-01-01）。") from None
    _year(day.year)
    return day


async def _after_edit(ctx: Ctx) -> None:
    """Commit, then re-evaluate the open cases (their clips' deadlines may have moved)."""
    await ctx.db.commit()
    try:
        await views.refresh_all(ctx.app)
    except Exception:  # the edit stands; the periodic refresh catches up
        log.exception("re-evaluating the cases after a calendar edit failed")


# -- pages ----------------------------------------------------------------------------------


async def _page(ctx: Ctx, year: str = "", status: int = 200, error: str | None = None,
                form: dict[str, str] | None = None) -> Response:
    cal = await cal_service.load_calendar(ctx.db)
    current = this_year()
    selected = [_year(year)] if year.strip() else [current, current + 1]
    overrides = await cal_service.list_overrides(ctx.db)
    declared = await cal_service.list_covered_years(ctx.db)
    uncovered = await uncovered_years(ctx, cal)
    pkg = package_years()
    choices = sorted({current - 1, current, current + 1, current + 2, *selected,
                      *(o.day.year for o in overrides), *(y.year for y in declared),
                      *(u.year for u in uncovered)})
    names = {f"user:{u.name}": u.display_name
             for u in (await ctx.db.execute(select(User))).scalars()}
    panels = []
    for y in selected:
        panels.append({
            "year": y, "statutory": y in pkg, "declared": y in cal.covered_years,
            "covered": cal.covers(y),
            "overrides": [o for o in overrides if o.day.year == y],
            "weekday_rest": sum(1 for o in overrides
                                if o.day.year == y and not o.working and o.day.weekday() < 5),
            "uncovered": next((u for u in uncovered if u.year == y), None),
            "months": [(m, month_grid(cal, y, m)) for m in range(1, 13)],
        })
    return render(ctx, "calendar.html", status=status, panels=panels, uncovered=uncovered,
                  declared=declared, pkg_years=years_label(pkg), pkg_version=package_version(),
                  choices=choices, selected=selected, single=bool(year.strip()), names=names,
                  weekday_zh=WEEKDAY_ZH, what_to_do=WHAT_TO_DO, error=error, form=form or {},
                  today=dt.datetime.now(CHINA).date())


@router.get("/calendar")
async def calendar_page(year: str = "", ctx: Ctx = NEED["calendar.read"]) -> Response:
    if year_or_none(year) is None:
        year = ""
    return await _page(ctx, year)


def _back(year: int) -> Response:
    current = this_year()
    return back_to("/calendar" if year in (current, current + 1) else f"/calendar?year={year}")


async def _edit(ctx: Ctx, action: Any, keep_form: bool = False) -> Response:
    """Run one edit from a form; a refused edit shows the page again with the reason
    (HTTP 400), nothing changed (``keep_form``: the override form keeps what was typed)."""
    form = await ctx.request.form()
    values = {k: _form_str(form, k, 2000) for k in ("day", "working", "reason", "year")}
    try:
        year = await action(values)
    except (OversightError, CalendarConfigError, InvalidInput) as exc:
        await ctx.rollback()
        message = exc.message if isinstance(exc, InvalidInput) else str(exc)
        if isinstance(exc, OversightError):
            message += "。"
        back = values["year"] or values["day"][:4]
        return await _page(ctx, back if year_or_none(back) is not None else "", status=400,
                           error=message,
                           form=values if keep_form else None)
    await _after_edit(ctx)
    return _back(year)


def _working(raw: str) -> bool:
    if raw not in ("1", "0"):
        raise InvalidInput("请选择该日是「工作日」还是「休息日」。")
    return raw == "1"


@router.post("/calendar/overrides")
async def set_override_form(ctx: Ctx = NEED["calendar.manage"]) -> Response:
    async def do(v: dict[str, str]) -> int:
        day = _day(v["day"])
        await cal_service.set_override(ctx.db, day, _working(v["working"]), v["reason"],
                                       ctx.require_actor().audit,
                                       settings=ctx.app.state.settings.oversight)
        return day.year

    return await _edit(ctx, do, keep_form=True)


@router.post("/calendar/overrides/remove")
async def remove_override_form(ctx: Ctx = NEED["calendar.manage"]) -> Response:
    async def do(v: dict[str, str]) -> int:
        day = _day(v["day"])
        await cal_service.remove_override(ctx.db, day, v["reason"], ctx.require_actor().audit,
                                          settings=ctx.app.state.settings.oversight)
        return day.year

    return await _edit(ctx, do)


@router.post("/calendar/years/declare")
async def declare_year_form(ctx: Ctx = NEED["calendar.manage"]) -> Response:
    async def do(v: dict[str, str]) -> int:
        year = _year(v["year"])
        await cal_service.declare_year(ctx.db, year, ctx.require_actor().audit,
                                       settings=ctx.app.state.settings.oversight)
        return year

    return await _edit(ctx, do)


@router.post("/calendar/years/withdraw")
async def withdraw_year_form(ctx: Ctx = NEED["calendar.manage"]) -> Response:
    async def do(v: dict[str, str]) -> int:
        year = _year(v["year"])
        await cal_service.withdraw_year(ctx.db, year, v["reason"], ctx.require_actor().audit,
                                        settings=ctx.app.state.settings.oversight)
        return year

    return await _edit(ctx, do)


# -- JSON API -------------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OverrideIn(Body):
    day: dt.date = Field(description="日期（YYYY-MM-DD）")
    working: bool = Field(description="true：工作日（如调休上班的周末）；false：休息日（如法定节假日）")
    reason: str = Field(min_length=1, max_length=2000, description="原因（必填，如「春节」）")


class YearIn(Body):
    year: int = Field(ge=MIN_YEAR, le=MAX_YEAR, description="年度")


class WithdrawIn(YearIn):
    reason: str = Field(min_length=1, max_length=2000, description="撤销原因（必填）")


async def _state(ctx: Ctx, year: int | None = None) -> dict[str, Any]:
    cal = await cal_service.load_calendar(ctx.db)
    return {
        "package": {"name": "chinesecalendar", "version": package_version(),
                    "years": list(package_years())},
        "declared_years": [year_json(y) for y in await cal_service.list_covered_years(ctx.db)],
        "overrides": [override_json(o) for o in await cal_service.list_overrides(ctx.db, year)],
        "uncovered_years": [
            {"year": u.year, "deadlines": u.deadlines, "open_alerts": u.open_alerts,
             "in_use": not u.upcoming, "message": u.message}
            for u in await uncovered_years(ctx, cal)],
    }


@api_router.get("/calendar", summary="工作日历：法定数据覆盖的年度、已声明录入的年度、调整表、"
                "尚未录入但上传期限需要的年度（及无法计算的期限数）")
async def get_calendar(year: int | None = Query(None, ge=MIN_YEAR, le=MAX_YEAR,
                                                description="只列出该年度的调整"),
                       ctx: Ctx = NEED["calendar.read"]) -> dict[str, Any]:
    return await _state(ctx, year)


@api_router.post("/calendar/overrides", summary="设置某日为工作日或休息日（法定节假日、调休上班日、"
                 "临时停止办公等；重新计算受影响的上传期限）")
async def post_override(body: OverrideIn, ctx: Ctx = NEED["calendar.manage"]
                        ) -> dict[str, Any]:
    _year(body.day.year)
    row = await cal_service.set_override(ctx.db, body.day, body.working, body.reason,
                                         ctx.require_actor().audit,
                                         settings=ctx.app.state.settings.oversight)
    data = override_json(row)
    await _after_edit(ctx)
    return data


@api_router.delete("/calendar/overrides", summary="删除某日的工作日历调整（须说明原因）")
async def delete_override(day: Annotated[dt.date, Query(description="日期（YYYY-MM-DD）")],
                          reason: str = Query(..., min_length=1, max_length=2000,
                                              description="删除原因"),
                          ctx: Ctx = NEED["calendar.manage"]) -> dict[str, Any]:
    await cal_service.remove_override(ctx.db, day, reason, ctx.require_actor().audit,
                                      settings=ctx.app.state.settings.oversight)
    await _after_edit(ctx)
    return {"day": day.isoformat(), "removed": True}


@api_router.post("/calendar/years/declare", summary="声明某年度的工作日历已录入（须先录入该年度的"
                 "法定节假日和调休上班日）")
async def declare(body: YearIn, ctx: Ctx = NEED["calendar.manage"]) -> dict[str, Any]:
    row = await cal_service.declare_year(ctx.db, body.year, ctx.require_actor().audit,
                                         settings=ctx.app.state.settings.oversight)
    data = year_json(row)
    await _after_edit(ctx)
    return data


@api_router.post("/calendar/years/withdraw", summary="撤销某年度「已录入」的声明（须说明原因）")
async def withdraw(body: WithdrawIn, ctx: Ctx = NEED["calendar.manage"]) -> dict[str, Any]:
    await cal_service.withdraw_year(ctx.db, body.year, body.reason, ctx.require_actor().audit,
                                    settings=ctx.app.state.settings.oversight)
    await _after_edit(ctx)
    return {"year": body.year, "withdrawn": True}
