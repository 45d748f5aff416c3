"""第二十九条 in a real browser: a party (当事人) logs in and sees nothing of their case, asks to
see one clip; the agency head (行政机关负责人) approves it on the 查阅申请 page; the party plays
the clip (H.264 through HTTP range requests, each decided by the access rules), downloads it as
the watermarked, C2PA-signed export, and still cannot open the clip that was not approved.
Every view and download is in the audit log."""

from __future__ import annotations

import datetime as dt


async def test_party_requests_head_approves_party_plays_the_clip(server, new_page, login, play,
                                                                run_db, shots, tmp_path, pki):
    from lerec.hub.admin.demo import ensure_device, make_mp4, store_segment
    from lerec.hub.admin.security import actor_for
    from lerec.hub.cases import links_adapter, service
    from lerec.hub.cases import users as user_service
    from lerec.hub.rules import default_rulebook

    clips = [make_mp4(tmp_path / f"clip{i}.mp4", seconds=4, label=i) for i in (1, 2)]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)

    async def setup(s):
        handler = await user_service.by_name(s, "handler_a")
        officer = await user_service.by_name(s, "officer_a")
        actor = actor_for(handler)
        case = await service.create_case(
            s, default_rulebook(), actor, title="滨江路某餐馆占道经营案", party="刘某",
            enforcement_type="penalty", start_mode="ex_officio", handler_id=handler.id,
            officer_ids=[officer.id])
        await ensure_device(s, "rec-web", "officer_a", "1号执法记录仪")
        segs = []
        for i, clip in enumerate(clips):
            seg = await store_segment(s, server.app.state.store, clip, device_id="rec-web",
                                      officer_id="officer_a",
                                      start=start + dt.timedelta(minutes=10 * i), seconds=4)
            await links_adapter.link(s, seg.segment_id, case.id, None, actor.audit, "现场录像")
            segs.append(seg.segment_id)
        party = await user_service.by_name(s, "party_a")
        await user_service.set_party_cases(s, party, [case.id], "user:agency_head")
        return case.id, segs

    case_id, (wanted, other) = await run_db(setup)

    # the party: lands on 查阅申请, sees the case's catalogue but nothing of its content
    party = await new_page()
    await login(party, "party_a", "/access")
    assert "我的案件" in await party.inner_text("main")
    assert await party.locator("nav >> text=案件").count() == 0
    await shots(party, "20-party-access-list")
    await party.click("text=申请查阅 / 查阅")
    await party.wait_for_url(f"**/access/cases/{case_id}")
    assert await party.locator("#granted video").count() == 0
    assert "目前没有经同意可以查阅的内容" in await party.inner_text("#granted")
    r = await party.goto(f"{server.url}/cases/{case_id}")
    assert r is not None and r.status == 403
    await party.goto(f"{server.url}/access/cases/{case_id}")
    await shots(party, "21-party-case-before-approval")

    # asks for one clip, for 7 days
    await party.fill("#purpose", "准备申请行政复议，核对现场执法录像")
    await party.check(f"input[name=items][value='segment:{wanted}']")
    await party.fill("#days", "7")
    await party.click("button:has-text('提交申请')")
    await party.wait_for_url(f"**/access/cases/{case_id}#req-*")
    card = party.locator("article.access-req").first
    assert await card.locator("[data-role=status]").inner_text() == "待审批"
    await shots(party, "22-party-request-pending")

    # the agency head approves it in the UI
    head = await new_page()
    await login(head, "agency_head")
    await head.click("nav >> text=查阅申请")
    await head.wait_for_url("**/access")
    req = head.locator("article.access-req[data-status=pending]").first
    assert "刘当事人" in await req.inner_text() and "准备申请行政复议" in await req.inner_text()
    await shots(head, "23-head-pending-request")
    await req.locator("form.approve-form button:has-text('同意')").click()
    await head.wait_for_url("**/access#req-*")
    approved = head.locator("article.access-req[data-status=approved]").first
    assert await approved.locator("[data-role=status]").inner_text() == "已同意"
    await shots(head, "24-head-approved")

    # the party plays the approved clip
    await party.goto(f"{server.url}/access/cases/{case_id}")
    video = party.locator(f"#granted #clip-{wanted} video")
    await video.scroll_into_view_if_needed()
    state = await play(video)
    assert state.get("error") is None and state["readyState"] >= 2 and state["currentTime"] > 0, \
        state
    assert await party.locator(f"#granted #clip-{other}").count() == 0
    assert "已同意" in await party.inner_text("#my-requests ~ article")
    await shots(party, "25-party-plays-approved-clip")

    # and downloads it: the export with a watermark naming them and C2PA content credentials,
    # prepared in the background while the page polls
    from lerec.hub.export import read_mp4

    await party.click(f"#clip-{wanted} button:has-text('下载（带水印和内容凭证）')")
    await party.wait_for_url(f"**/access/cases/{case_id}/clips/{wanted}/export")
    await party.wait_for_selector("#export-status[data-state=ready]", timeout=120_000)
    assert "可信" in await party.inner_text("#export-status")
    await shots(party, "25b-party-export-ready")
    async with party.expect_download() as info:
        await party.click("a.export-download")
    download = await info.value
    assert download.suggested_filename.endswith("-导出.mp4"), download.suggested_filename
    saved = tmp_path / "party-download.mp4"
    await download.save_as(saved)
    cred = read_mp4(saved, pki.ca_cert.read_text())
    assert cred.validation_state == "Trusted" and cred.assertion["requester"] == "刘当事人"
    await party.goto(f"{server.url}/access/cases/{case_id}")

    # the other clip stays closed to them
    r = await party.goto(f"{server.url}/access/cases/{case_id}/clips/{other}/media")
    assert r is not None and r.status == 403
    assert "不在批准范围内" in await party.inner_text("main")
    await shots(party, "26-party-refused-other-clip")

    async def views(s):
        from lerec.hub.audit import log as audit

        return [(e.type.value, e.details.get("item"), e.details.get("allowed"))
                for _, e in await audit.entries(s, subject=f"case:{case_id}")
                if e.actor == "user:party_a" and e.type.value in ("view", "download")]

    # officials mark the other clip as personal privacy on the case page
    await head.goto(f"{server.url}/cases/{case_id}")
    await head.click("#access summary:has-text('设定密级')")
    await head.select_option("#mark-item", f"segment:{other}")
    await head.check("#marking-form input[value=personal_privacy]")
    await head.fill("#mark-owner", "p:zhao")
    await head.click("#marking-form button:has-text('保存密级')")
    await head.wait_for_url(f"**/cases/{case_id}#access")
    assert "个人隐私" in await head.inner_text(f"#clip-{other}")
    await head.locator("#access").scroll_into_view_if_needed()
    await shots(head, "27-case-access-and-markings")

    seen = await run_db(views)
    assert ("view", f"segment:{wanted}", True) in seen
    assert ("view", f"segment:{other}", False) in seen
    assert ("download", f"segment:{wanted}", True) in seen
