"""工作日历 in a real browser: a clip recorded on 30 Dec 2026 has no 第二十六条 upload deadline
(chinesecalendar has no 2027 data); the archivist (党政办) sees the 2027 banner, enters 元旦 and
春节 through the form, declares 2027 entered, and the banner is gone: the deadline is
computed."""

from __future__ import annotations

import asyncio
import datetime as dt

CST = dt.timezone(dt.timedelta(hours=8))


async def test_archivist_enters_2027_and_the_banner_goes(server, new_page, login, run_db,
                                                          shots, tmp_path, monkeypatch):
    from lerec.hub.admin.demo import ensure_device, store_segment
    from lerec.hub.db.oversight_models import SegmentDeadline
    from lerec.hub.oversight.timeliness import backfill_deadlines
    from lerec.hub.policy import workdays

    if workdays.ChineseCalendarSource().covers(2027):  # a later chinesecalendar: look like 1.11
        real = workdays._package_covers
        monkeypatch.setattr(workdays, "_package_covers", lambda year: year < 2027 and real(year))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 1000)

    async def setup(s):
        await ensure_device(s, "rec-web", "officer_a", "1号执法记录仪")
        seg = await store_segment(s, server.app.state.store, clip, device_id="rec-web",
                                  officer_id="officer_a", seconds=2,
                                  start=dt.datetime(2026, 12, 30, 10, tzinfo=CST))
        await backfill_deadlines(s, dt.datetime.now(dt.UTC))
        return seg.segment_id

    seg = await run_db(setup)

    page = await new_page()
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))  # the confirm() prompts
    await login(page, "archivist")
    await page.click("nav >> text=工作日历")
    await page.wait_for_url("**/calendar")
    banner = page.locator(".calendar-banner[data-year='2027'][data-in-use=yes]")
    assert "2027年工作日历尚未录入：1 条音像记录的上传期限无法计算" in await banner.inner_text()
    await shots(page, "40-calendar-2027-not-entered")

    for day, working, reason in (("2027-01-01", "0", "元旦"), ("2027-02-08", "0", "春节")):
        await page.fill("#ov-day", day)
        await page.check(f"#override-form input[name=working][value='{working}']")
        await page.fill("#ov-reason", reason)
        await page.click("#override-form button:has-text('保存')")
        await page.wait_for_url("**/calendar")
        row = page.locator(f"#year-2027 tr[data-day='{day}']")
        assert reason in await row.inner_text() and "休息日" in await row.inner_text()
    assert await banner.count() == 1  # holidays alone do not cover the year

    await page.click("#year-2027 button:has-text('声明2027年工作日历已录入')")
    await page.wait_for_url("**/calendar")
    assert await page.locator(".calendar-banner[data-year='2027']").count() == 0
    assert await page.locator("#year-2027 .badge:has-text('已声明录入')").count() == 1
    assert "2027年" in await page.inner_text(".declared-years")
    await page.click("#year-2027 summary:has-text('月历')")
    jan1 = page.locator("#year-2027 td[data-day='2027-01-01']")
    assert "rest" in (await jan1.get_attribute("class") or "")
    await shots(page, "41-calendar-2027-declared")

    async def deadline(s):
        return await s.get(SegmentDeadline, seg)

    row = await run_db(deadline)
    # Thu 31 Dec, then (元旦, weekend) Mon 4 Jan: due by the end of 4 Jan
    assert row.status != "calendar_error" and row.deadline == dt.datetime(2027, 1, 5, tzinfo=CST)
