"""A handler in a real browser: log in, start a case, record a 现场检查, link a clip, watch
the 第十一条 finding disappear, play the clip (H.264 through HTTP range requests)."""

from __future__ import annotations

import datetime as dt

CHINA = dt.timezone(dt.timedelta(hours=8))


async def test_handler_carries_a_case_and_plays_the_clip(server, new_page, login, play, run_db,
                                                         shots, tmp_path):
    from lerec.hub.admin.demo import ensure_device, make_mp4, store_segment

    page = await new_page()
    page.on("dialog", lambda d: asyncio_task(d.accept()))
    await page.goto(server.url + "/login")
    await shots(page, "01-login")
    await login(page, "handler_a")

    # start a case ex officio with officer 张执法 on it
    await page.click("text=新建案件")
    await page.fill("#title", "滨江路某餐馆占道经营案")
    await page.fill("#party", "某某餐馆（经营者刘某）")
    await page.select_option("#enforcement_type", "penalty")
    await page.select_option("#start_mode", "ex_officio")
    await page.check("input[name=officers] >> nth=0")
    await shots(page, "02-new-case")
    await page.click("button:has-text('立案')")
    await page.wait_for_url("**/cases/*")
    case_url = page.url
    assert "程序启动" in await page.inner_text(".progress")

    # move to 调查取证 and record a 现场检查 two days ago
    await page.click("button:has-text('推进至「调查取证」')")
    await page.wait_for_load_state()
    await page.select_option("select[aria-label*='调查取证']", label="现场检查（勘验）（第九条）")
    await page.wait_for_url("**/records/new?kind=site_inspection")
    inspected = (dt.datetime.now(CHINA) - dt.timedelta(days=2)).replace(second=0, microsecond=0)
    await page.fill("#f_inspected_at", inspected.strftime("%Y-%m-%dT%H:%M"))
    await page.fill("#f_place", "新乡镇滨江路 18 号门前")
    await page.select_option("#f_target", "premises")
    await page.fill("#f_inspectors", "张执法、李执法")
    await page.fill("#f_party_or_witness", "刘某")
    await page.fill("#f_findings", "门前人行道摆放桌椅 12 张，当事人在场")
    await shots(page, "03-record-form")
    await page.click("button:has-text('保存记录')")
    await page.wait_for_url(case_url + "*")
    finding = page.locator(".finding[data-code=av_required_missing]")
    assert await finding.count() >= 1
    assert "第十一条" in await finding.first.inner_text()
    await shots(page, "04-case-with-finding")

    # a clip the officer uploaded a day later (outside the step, so not linked automatically)
    clip = make_mp4(tmp_path / "clip.mp4", seconds=4)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)

    async def add(s):
        await ensure_device(s, "rec-web", "officer_a", "1号执法记录仪")
        return (await store_segment(s, server.app.state.store, clip, device_id="rec-web",
                                    officer_id="officer_a", start=start, seconds=4)).segment_id

    segment_id = await run_db(add)

    # link it by hand (htmx loads the candidates)
    await page.click("button:has-text('查找可关联的录像')")
    form = page.locator(f"#clip-candidates form:has(input[value='{segment_id}'])")
    await form.wait_for()
    await form.locator("select[name=record_id]").select_option(index=1)
    await form.locator("button:has-text('关联')").click()
    await page.wait_for_load_state()
    assert await page.locator(".finding[data-code=av_required_missing]").count() == 0

    # play it: the browser fetches byte ranges and decodes H.264
    video = page.locator(f"#clip-{segment_id} video").first
    await video.scroll_into_view_if_needed()
    state = await play(video)
    assert state.get("error") is None and state["readyState"] >= 2 and state["currentTime"] > 0, \
        state
    await shots(page, "05-case-linked-clip")

    await page.goto(server.url + "/cases")
    await shots(page, "06-case-list")
    await page.goto(server.url + "/findings")
    await shots(page, "07-findings")


async def test_other_pages_look_right(server, new_page, login, shots):
    page = await new_page()
    await login(page, "agency_head")
    for path, name in (("/fleet", "08-fleet"), ("/alerts", "09-alerts"), ("/users", "10-users")):
        r = await page.goto(server.url + path)
        assert r is not None and r.status == 200
        await shots(page, name)
    r = await page.goto(server.url + "/cases/999")
    assert r is not None and r.status == 404
    assert "无权查看" in await page.inner_text("main")
    await shots(page, "11-not-found")


def asyncio_task(coro):
    import asyncio

    return asyncio.ensure_future(coro)

