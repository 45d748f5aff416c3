"""保存期满 in a real browser: an unlinked recording past its retention period is listed; one
archivist (党政办) asks to delete it with a reason; the page says why 执行删除 is not yet
possible; the agency head and a second archivist agree; the recording is deleted from the
store and the permanent 删除记录 names what was deleted, why and by whom."""

from __future__ import annotations

import asyncio
import datetime as dt


async def test_request_two_approvals_execute_and_the_record(server, new_page, login, run_db,
                                                           shots, tmp_path, password):
    from lerec.hub.admin.demo import ensure_device, store_segment
    from lerec.hub.cases import users as user_service
    from lerec.hub.rules import default_rulebook

    clip = tmp_path / "old-clip.mp4"
    clip.write_bytes(b"\0\0\0\x18ftypmp42" + b"old recording without enforcement" * 40)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=200)

    async def setup(s):
        await user_service.create_user(s, default_rulebook(), name="archivist_b",
                                       role="archivist", password=password,
                                       display_name="冯党政办")
        await ensure_device(s, "rec-old", "officer_a", "3号执法记录仪")
        seg = await store_segment(s, server.app.state.store, clip, device_id="rec-old",
                                  officer_id="officer_a", start=start, seconds=60)
        return seg.segment_id, seg.sha256, seg.stored_ref

    segment_id, sha256, ref = await run_db(setup)
    blob = server.app.state.store.path_for(ref)
    assert blob.exists()

    # the first archivist finds it and asks to delete it
    first = await new_page()
    await login(first, "archivist")
    await first.click("nav >> text=保存期满")
    await first.wait_for_url("**/retention")
    row = first.locator(f"#cand-{segment_id}")
    assert "rec-old" in await row.inner_text() and "未关联任何案件" in await row.inner_text()
    await row.locator("summary:has-text('申请删除')").click()
    await row.locator("form.request-form textarea[name=reason]").fill("误录，无执法内容")
    await row.locator("button:has-text('申请删除')").click()
    await first.wait_for_url("**/retention#del-req-*")
    card = first.locator(f"article.deletion-req[data-segment='{segment_id}']")
    assert "误录，无执法内容" in await card.inner_text()
    assert "还需 2 名其他人员同意" in await card.locator("[data-role=execute-blocked]").inner_text()
    assert await card.locator("button:has-text('执行删除')").is_disabled()
    await shots(first, "40-retention-requested")

    # the agency head agrees; one more person is needed
    head = await new_page()
    await login(head, "agency_head")
    await head.goto(server.url + "/retention")
    card = head.locator(f"article.deletion-req[data-segment='{segment_id}']")
    await card.locator("input[name=note]").fill("核实为误录")
    await card.locator("form.approve-form button:has-text('同意')").click()
    await head.wait_for_url("**/retention#del-req-*")
    card = head.locator(f"article.deletion-req[data-segment='{segment_id}']")
    assert "周镇长（agency_head）" in await card.locator("[data-role=approvals]").inner_text()
    assert "您已同意该申请，还需 1 名其他人员同意" in await card.inner_text()
    assert "还需 1 名其他人员同意" in await card.locator("[data-role=execute-blocked]").inner_text()
    await shots(head, "41-retention-one-approval")

    # a second archivist agrees: two different people
    second = await new_page()
    await login(second, "archivist_b")
    await second.goto(server.url + "/retention")
    card = second.locator(f"article.deletion-req[data-segment='{segment_id}']")
    await card.locator("form.approve-form button:has-text('同意')").click()
    await second.wait_for_url("**/retention#del-req-*")
    card = second.locator(f"article.deletion-req[data-segment='{segment_id}']")
    assert await card.get_attribute("data-action") == "delete"
    assert "可以执行删除" in await card.locator("[data-role=status]").inner_text()
    await shots(second, "42-retention-two-approvals")

    # and deletes it (after the confirm() prompt)
    second.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await card.locator("form.execute-form button:has-text('执行删除')").click()
    await second.wait_for_url(f"**/retention#deleted-{segment_id}")
    assert not blob.exists()
    assert await second.locator(f"#cand-{segment_id}").count() == 0
    assert await second.locator(f"article.deletion-req[data-segment='{segment_id}']").count() == 0
    record = await second.locator(f"#deletions #deleted-{segment_id}").inner_text()
    for text in ("rec-old", sha256, "误录，无执法内容", "吴党政办（archivist）",
                 "周镇长（agency_head）", "冯党政办（archivist_b）"):
        assert text in record, (text, record)
    await shots(second, "43-retention-deleted")

    # the first archivist sees the same permanent record
    await first.goto(server.url + "/retention")
    assert sha256 in await first.locator(f"#deleted-{segment_id}").inner_text()


async def test_hold_closes_the_request_and_release_makes_it_a_candidate_again(
        server, new_page, login, run_db, shots, tmp_path):
    """保全 in the browser: a party asks to see an old recording (第二十九条); the agency head
    holds it from the candidate row, which closes the archivist's deletion request; after the
    查阅 the hold is released with a reason and the recording is a candidate again."""
    from lerec.hub.admin.demo import ensure_device, store_segment

    clip = tmp_path / "held-clip.mp4"
    clip.write_bytes(b"\0\0\0\x18ftypmp42" + b"recording a party asked to see" * 40)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=200)

    async def setup(s):
        await ensure_device(s, "rec-held", "officer_a", "4号执法记录仪")
        seg = await store_segment(s, server.app.state.store, clip, device_id="rec-held",
                                  officer_id="officer_a", start=start, seconds=60)
        return seg.segment_id

    segment_id = await run_db(setup)
    archivist = await new_page()
    await login(archivist, "archivist")
    await archivist.goto(server.url + "/retention")
    row = archivist.locator(f"#cand-{segment_id}")
    await row.locator("summary:has-text('申请删除')").click()
    await row.locator("form.request-form textarea[name=reason]").fill("无执法内容")
    await row.locator("button:has-text('申请删除')").click()
    await archivist.wait_for_url("**/retention#del-req-*")

    head = await new_page()
    await login(head, "agency_head")
    await head.goto(server.url + "/retention")
    row = head.locator(f"#cand-{segment_id}")
    assert "已申请删除" in await row.inner_text()
    await row.locator("summary:has-text('保全')").click()
    await row.locator("form.hold-form textarea[name=reason]").fill("当事人申请查阅（第二十九条）")
    await row.locator("form.hold-form button:has-text('保全')").click()
    await head.wait_for_url("**/retention#hold-*")
    held = head.locator(f"#holds tr[data-segment='{segment_id}']")
    text = await held.inner_text()
    assert "rec-held" in text and "当事人申请查阅（第二十九条）" in text, text
    assert "周镇长（agency_head）" in text
    assert await head.locator(f"#cand-{segment_id}").count() == 0
    assert await head.locator(f"article.deletion-req[data-segment='{segment_id}']").count() == 0
    await shots(head, "44-retention-held")

    await held.locator("summary:has-text('解除保全')").click()
    await held.locator("textarea[name=reason]").fill("查阅已完成")
    await held.locator("button:has-text('解除保全')").click()
    await head.wait_for_url("**/retention#holds")
    assert await head.locator(f"#holds tr[data-segment='{segment_id}']").count() == 0
    assert await head.locator(f"#cand-{segment_id}").count() == 1
    await head.locator("details.released-holds summary").click()
    released = await head.locator("details.released-holds").inner_text()
    assert "查阅已完成" in released and "rec-held" in released, released
    await shots(head, "45-retention-hold-released")
