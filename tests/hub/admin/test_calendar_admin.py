"""The working-day calendar (工作日历) pages and API: a year the statutory data does not cover
(2027 with chinesecalendar 1.11) leaves the 第二十六条 upload deadlines of its segments
uncomputed, the page says so; the administrator enters the year's holidays and declares it,
and the deadlines are computed and the alerts resolved at once. Case findings use the
administrator's table too. Real app, real database, real audit log."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select
from support.admin_client import add_segment, audit_rows

from lerec.hub.db.oversight_models import Alert, CalendarOverride, CalendarYear, SegmentDeadline
from lerec.hub.oversight.timeliness import backfill_deadlines
from lerec.hub.policy import workdays
from lerec.hub.policy.workdays import ChineseCalendarSource

CST = dt.timezone(dt.timedelta(hours=8))
# Wed 30 Dec 2026: Thu 31 Dec is the 1st working day, the 2nd falls in 2027
ENDS_IN_DECEMBER = dt.datetime(2026, 12, 30, 10, 0, tzinfo=CST)


@pytest.fixture(autouse=True)
def _package_lacks_2027(monkeypatch):
    """These tests need 2027 to be a year the package does not cover (true of
    chinesecalendar 1.11); a later release that covers it is made to look like 1.11."""
    no_2027(monkeypatch)


def no_2027(monkeypatch) -> None:
    if ChineseCalendarSource().covers(2027):
        real = workdays._package_covers
        monkeypatch.setattr(workdays, "_package_covers", lambda year: year < 2027 and real(year))
    assert not ChineseCalendarSource().covers(2027)


async def deadline_row(app, segment_id: str) -> SegmentDeadline:
    async with app.state.sessions() as s:
        row = await s.get(SegmentDeadline, segment_id)
        assert row is not None
        return row


async def stored_segment(app, tmp_path, start: dt.datetime = ENDS_IN_DECEMBER) -> str:
    """A stored segment with its deadline row, as the ingest hook leaves it."""
    seg = await add_segment(app, tmp_path, "officer_a", start.astimezone(dt.UTC),
                            data=b"\0" * 1000)
    async with app.state.sessions() as s, s.begin():
        await backfill_deadlines(s, dt.datetime.now(dt.UTC))
    return seg


async def calendar_alerts(app) -> list[Alert]:
    async with app.state.sessions() as s:
        return list((await s.execute(select(Alert).where(Alert.kind == "calendar_not_covered")
                                     .order_by(Alert.id))).scalars())


async def calendar_audit(app) -> list[tuple[str, dict]]:
    return [(actor, d) for _, _, actor, subjects, d in await audit_rows(app, "config_changed")
            if "config:calendar" in subjects]


def banner(html: str, year: int) -> str | None:
    m = re.search(rf'<div class="alert [a-z]+ calendar-banner" data-year="{year}"'
                  r'[^>]*>(.*?)</div>\s*</div>', html, re.DOTALL)
    return re.sub(r"<[^>]+>", "", m.group(1)) if m else None


async def test_uncovered_year_is_entered_through_the_page(app, login, tmp_path):
    seg = await stored_segment(app, tmp_path)
    row = await deadline_row(app, seg)
    assert row.status == "calendar_error" and row.error_year == 2027 and row.deadline is None
    (alert,) = await calendar_alerts(app)
    assert alert.resolved_at is None

    archivist = await login("archivist")
    page = await archivist.get("/calendar?year=2027")
    assert page.status_code == 200, page.text[:500]
    text = banner(page.text, 2027)
    assert text is not None, page.text[:3000]
    assert "2027年工作日历尚未录入：1 条音像记录的上传期限无法计算" in text
    assert "1 条预警未处理" in text and "声明该年度已录入" in text and "调休上班" in text
    assert 'data-in-use="yes"' in page.text
    # the statutory source names the years the installed package covers
    assert re.search(r'id="package-years">\d{4}–2026年<', page.text)

    # declaring before entering any holiday is refused, readably, and changes nothing
    r = await archivist.post("/calendar/years/declare", {"year": "2027"})
    assert r.status_code == 400 and "<html" in r.text
    assert "已声明2027年的工作日历已录入，但没有任何周一至周五的休息日" in r.text
    # a change without a reason is refused
    r = await archivist.post("/calendar/overrides", {"day": "2027-01-01", "working": "0",
                                                     "reason": "  "})
    assert r.status_code == 400 and "设置工作日历必须填写说明" in r.text
    r = await archivist.post("/calendar/overrides", {"day": "2027-13-01", "working": "0",
                                                     "reason": "元旦"})
    assert r.status_code == 400 and "格式不正确" in r.text
    async with app.state.sessions() as s:
        assert (await s.execute(select(CalendarOverride))).first() is None
        assert (await s.execute(select(CalendarYear))).first() is None
    assert await calendar_audit(app) == []

    # 元旦 (Fri 1 Jan), a 春节 holiday and a 调休 working Saturday; then the declaration
    for day, working, reason in (("2027-01-01", "0", "元旦"), ("2027-02-08", "0", "春节"),
                                 ("2027-02-20", "1", "春节调休上班")):
        r = await archivist.post("/calendar/overrides", {"day": day, "working": working,
                                                         "reason": reason})
        assert r.status_code == 303 and r.headers["location"].startswith("/calendar"), r.text
    row = await deadline_row(app, seg)
    assert row.status == "calendar_error"  # a few overrides do not cover a year
    r = await archivist.post("/calendar/years/declare", {"year": "2027"})
    assert r.status_code == 303, r.text

    # the deadline is computed: Thu 31 Dec, (Fri 1 Jan 元旦, weekend), Mon 4 Jan -> end of day
    row = await deadline_row(app, seg)
    assert row.status != "calendar_error" and row.error_year is None
    assert row.deadline == dt.datetime(2027, 1, 5, tzinfo=CST)
    (alert,) = await calendar_alerts(app)
    assert alert.resolved_at is not None and alert.resolved_by == "hub"

    page = await archivist.get("/calendar?year=2027")
    assert banner(page.text, 2027) is None
    assert 'data-year="2027" data-covered="yes"' in page.text
    table = page.text[page.text.index('class="calendar-overrides"'):]
    assert re.search(r'data-day="2027-01-01">.*?周五.*?休息日.*?元旦.*?吴党政办', table, re.DOTALL)
    assert re.search(r'data-day="2027-02-20">.*?周六.*?工作日.*?春节调休上班', table, re.DOTALL)
    assert 'action="/calendar/years/withdraw"' in page.text
    # the month grid: 1 Jan a rest day by the override, 4 Jan a working day by the weekday rule
    assert re.search(r'class="cal-day rest override[^"]*" data-day="2027-01-01" '
                     r'title="[^"]*休息日（调整：元旦）', page.text)
    assert re.search(r'class="cal-day work[^"]*" data-day="2027-01-04" '
                     r'title="[^"]*工作日（按周一至周五）', page.text)

    # removing 元旦 moves the deadline back (reason required); the table is checked again
    r = await archivist.post("/calendar/overrides/remove", {"day": "2027-01-01", "reason": ""})
    assert r.status_code == 400 and "必须填写说明" in r.text
    r = await archivist.post("/calendar/overrides/remove", {"day": "2027-01-01",
                                                            "reason": "录入错误"})
    assert r.status_code == 303
    assert (await deadline_row(app, seg)).deadline == dt.datetime(2027, 1, 2, tzinfo=CST)
    # the last weekday holiday of a declared year cannot go
    r = await archivist.post("/calendar/overrides/remove", {"day": "2027-02-08",
                                                            "reason": "录入错误"})
    assert r.status_code == 400 and "没有任何周一至周五的休息日" in r.text

    # every change is one audit entry, by the archivist; refusals left none
    audit = await calendar_audit(app)
    assert [d["action"] for _, d in audit] == [
        "calendar_override_set", "calendar_override_set", "calendar_override_set",
        "calendar_year_declared", "calendar_override_removed"]
    assert {actor for actor, _ in audit} == {"user:archivist"}
    assert audit[0][1]["day"] == "2027-01-01" and audit[0][1]["reason"] == "元旦"
    assert audit[-1][1]["reason"] == "录入错误"


async def test_readers_cannot_edit_and_forms_need_the_csrf_token(app, login, tmp_path):
    await stored_segment(app, tmp_path)
    handler = await login("handler_a")  # calendar.read, not calendar.manage
    page = await handler.get("/calendar")
    assert page.status_code == 200
    assert banner(page.text, 2027) is not None
    assert 'id="override-form"' not in page.text and "/calendar/years/declare" not in page.text
    body = {"day": "2027-01-01", "working": "0", "reason": "元旦"}
    r = await handler.post("/calendar/overrides", body)
    assert r.status_code == 403 and "无权" in r.text
    r = await handler.api("POST", "/api/v1/calendar/overrides",
                          {"day": "2027-01-01", "working": False, "reason": "元旦"})
    assert r.status_code == 403 and "无权" in r.json()["detail"]
    r = await handler.api("POST", "/api/v1/calendar/years/declare", {"year": 2027})
    assert r.status_code == 403

    officer = await login("officer_a")  # not even calendar.read
    assert (await officer.get("/calendar")).status_code == 403

    archivist = await login("archivist")
    r = await archivist.post("/calendar/overrides", body, csrf=False)
    assert r.status_code == 403 and "CSRF" in r.text
    r = await archivist.api("POST", "/api/v1/calendar/overrides",
                            {"day": "2027-01-01", "working": False, "reason": "元旦"},
                            csrf=False)
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    async with app.state.sessions() as s:
        assert (await s.execute(select(CalendarOverride))).first() is None
    denied = [d for _, _, _, _, d in await audit_rows(app) if d.get("outcome") == "denied"]
    assert {d["reason"] for d in denied} == {"role", "csrf"}
    assert len(denied) == 6


async def test_json_api_round_trip(app, login, tmp_path):
    seg = await stored_segment(app, tmp_path, dt.datetime(2027, 3, 10, 9, 0, tzinfo=CST))
    head = await login("agency_head")
    r = await head.api("GET", "/api/v1/calendar")
    assert r.status_code == 200, r.text
    state = r.json()
    assert 2026 in state["package"]["years"] and 2027 not in state["package"]["years"]
    assert state["package"]["name"] == "chinesecalendar" and state["package"]["version"]
    assert state["declared_years"] == [] and state["overrides"] == []
    (y2027,) = [u for u in state["uncovered_years"] if u["year"] == 2027]
    assert y2027 == {"year": 2027, "deadlines": 1, "open_alerts": 1, "in_use": True,
                     "message": "2027年工作日历尚未录入：1 条音像记录的上传期限无法计算"
                                "（1 条预警未处理）。"}

    r = await head.api("POST", "/api/v1/calendar/overrides",
                       {"day": "2027-02-08", "working": False, "reason": ""})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "reason"
    r = await head.api("POST", "/api/v1/calendar/years/declare", {"year": 2027})
    assert r.status_code == 400 and "周一至周五的休息日" in r.json()["detail"]

    r = await head.api("POST", "/api/v1/calendar/overrides",
                       {"day": "2027-02-08", "working": False, "reason": "春节"})
    assert r.status_code == 200, r.text
    assert r.json() | {"set_at": None} == {
        "day": "2027-02-08", "weekday": "周一", "working": False, "reason": "春节",
        "set_by": "user:agency_head", "set_at": None}
    r = await head.api("POST", "/api/v1/calendar/overrides",
                       {"day": "2027-03-11", "working": False, "reason": "镇防汛停止办公"})
    assert r.status_code == 200
    r = await head.api("POST", "/api/v1/calendar/years/declare", {"year": 2027})
    assert r.status_code == 200 and r.json()["year"] == 2027
    assert r.json()["set_by"] == "user:agency_head"
    # Wed 10 Mar: Thu 11 closed, Fri 12 and Mon 15 -> end of Mon 15
    assert (await deadline_row(app, seg)).deadline == dt.datetime(2027, 3, 16, tzinfo=CST)

    state = (await head.api("GET", "/api/v1/calendar?year=2027")).json()
    assert [y["year"] for y in state["declared_years"]] == [2027]
    assert [o["day"] for o in state["overrides"]] == ["2027-02-08", "2027-03-11"]
    assert all(u["year"] != 2027 for u in state["uncovered_years"])
    assert (await head.api("GET", "/api/v1/calendar?year=2026")).json()["overrides"] == []

    r = await head.api("DELETE", "/api/v1/calendar/overrides?day=2027-03-11&reason=")
    assert r.status_code == 400
    r = await head.api("DELETE", "/api/v1/calendar/overrides?day=2027-03-12&reason=x")
    assert r.status_code == 404 and "未找到" in r.json()["detail"]
    r = await head.api("DELETE", "/api/v1/calendar/overrides?day=2027-03-11&reason=已恢复办公")
    assert r.status_code == 200 and r.json() == {"day": "2027-03-11", "removed": True}
    assert (await deadline_row(app, seg)).deadline == dt.datetime(2027, 3, 13, tzinfo=CST)

    # withdrawing the year: deadlines uncomputed again, a new alert, the year listed again
    r = await head.api("POST", "/api/v1/calendar/years/withdraw", {"year": 2027})
    assert r.status_code == 400
    r = await head.api("POST", "/api/v1/calendar/years/withdraw",
                       {"year": 2027, "reason": "通知有更正，重新录入"})
    assert r.status_code == 200 and r.json() == {"year": 2027, "withdrawn": True}
    assert (await deadline_row(app, seg)).status == "calendar_error"
    alerts = await calendar_alerts(app)
    assert [a.resolved_at is None for a in alerts] == [False, True]
    (y2027,) = [u for u in (await head.api("GET", "/api/v1/calendar")).json()[
        "uncovered_years"] if u["year"] == 2027]
    assert (y2027["deadlines"], y2027["open_alerts"]) == (1, 1)

    audit = await calendar_audit(app)
    assert [d["action"] for _, d in audit] == [
        "calendar_override_set", "calendar_override_set", "calendar_year_declared",
        "calendar_override_removed", "calendar_year_withdrawn"]
    assert {actor for actor, _ in audit} == {"user:agency_head"}


async def test_case_findings_use_the_administrators_calendar(app, login, tmp_path):
    """A clip without a stored deadline (its ingest hook never ran) gets one computed for the
    case's findings — on the administrator's calendar, not on the statutory data alone."""
    from lerec.hub.db.models import Segment

    handler = await login("handler_a")
    from support.admin_client import user_id

    case = await handler.create_case(officer_ids=[await user_id(app, "officer_a")])
    # ended Tue 24 Nov 2026 (covered by the package); Wed 25 and Thu 26 are working days
    seg = await add_segment(app, tmp_path, "officer_a",
                            dt.datetime(2026, 11, 24, 10, 0, tzinfo=CST).astimezone(dt.UTC),
                            data=b"\0" * 1000)
    async with app.state.sessions() as s, s.begin():
        row = await s.get(Segment, seg)
        row.received_at = dt.datetime(2026, 11, 27, 12, 0, tzinfo=CST)  # after end of Thu 26
    r = await handler.api("POST", f"/api/v1/cases/{case['id']}/clips", {"segment_id": seg})
    assert r.status_code == 201, r.text

    async def late() -> list[dict]:
        r = await handler.api("GET", f"/api/v1/cases/{case['id']}/findings")
        assert r.status_code == 200, r.text
        return [f for f in r.json() if f["code"] == "upload_late" and f["clip_id"] == seg]

    assert len(await late()) == 1  # statutory data: deadline end of Thu 26 Nov
    archivist = await login("archivist")
    r = await archivist.api("POST", "/api/v1/calendar/overrides",
                            {"day": "2026-11-25", "working": False, "reason": "镇防汛停止办公"})
    assert r.status_code == 200, r.text
    assert await late() == []  # the closure moves the deadline to the end of Fri 27 Nov

    from lerec.hub.cases.snapshot import build_snapshot, linked_clips
    from lerec.hub.db.cases_models import Case

    async with app.state.sessions() as s:
        (clip,) = await linked_clips(s, app.state.rulebook, case["id"])
        assert clip.deadline == dt.datetime(2026, 11, 28, tzinfo=CST)
        snap = await build_snapshot(s, app.state.rulebook, await s.get(Case, case["id"]))
        assert snap.clips[0].upload_deadline == dt.datetime(2026, 11, 28, tzinfo=CST)


async def test_openapi_documents_the_calendar_api(client_factory):
    paths = (await client_factory().get("/api/openapi.json")).json()["paths"]
    for path, method in (("/api/v1/calendar", "get"), ("/api/v1/calendar/overrides", "post"),
                         ("/api/v1/calendar/overrides", "delete"),
                         ("/api/v1/calendar/years/declare", "post"),
                         ("/api/v1/calendar/years/withdraw", "post")):
        summary = paths[path][method]["summary"]
        assert not summary.isascii(), (path, method, summary)
    assert not any(p.startswith("/calendar") for p in paths)  # the pages are not API
