"""Clips on cases: auto-link and manual link (hub/oversight), the 第十一条 finding, playback
by HTTP range requests from the blob store, every view and download in the audit log."""

from __future__ import annotations

import datetime as dt

from support.admin_client import add_segment, audit_rows, user_id

CHINA = dt.timezone(dt.timedelta(hours=8))
WHEN = dt.datetime(2026, 11, 20, 9, 30, tzinfo=CHINA)


def inspection(at: dt.datetime) -> dict:
    return {"inspected_at": at.isoformat(), "place": "滨江路18号", "target": "premises",
            "inspectors": "张执法", "party_or_witness": "刘某", "findings": "桌椅占道"}


async def _case_in_investigation(app, h):
    case = await h.create_case(officer_ids=[await user_id(app, "officer_a")])
    r = await h.api("POST", f"/api/v1/cases/{case['id']}/stage", {"to": "investigation"})
    assert r.status_code == 200
    return case["id"]


async def test_manual_link_clears_the_article_11_finding_and_unlink_brings_it_back(
        app, login, tmp_path):
    h = await login("handler_a")
    cid = await _case_in_investigation(app, h)
    rid = (await h.api("POST", f"/api/v1/cases/{cid}/records",
                       {"kind": "site_inspection", "fields": inspection(WHEN)})).json()["id"]
    findings = (await h.get(f"/api/v1/cases/{cid}/findings")).json()
    assert any(f["code"] == "av_required_missing" and f["article"] == 11 for f in findings)
    # a clip of an officer NOT on the case, far from the step: not auto-linked
    seg = await add_segment(app, tmp_path, "officer_b", WHEN - dt.timedelta(days=2))
    r = await h.api("POST", f"/api/v1/cases/{cid}/clips",
                    {"segment_id": seg, "record_id": rid, "reason": "补充关联"})
    assert r.status_code == 201, r.text
    findings = (await h.get(f"/api/v1/cases/{cid}/findings")).json()
    assert not any(f["code"] == "av_required_missing" for f in findings)
    r = await h.api("DELETE", f"/api/v1/cases/{cid}/clips/{seg}?reason=关联错误")
    assert r.status_code == 200
    findings = (await h.get(f"/api/v1/cases/{cid}/findings")).json()
    assert any(f["code"] == "av_required_missing" for f in findings)
    types = [row[1] for row in await audit_rows(app) if f"segment:{seg}" in row[3]]
    assert types == ["link", "unlink"]


async def test_recording_a_step_auto_links_the_officers_clip(app, login, tmp_path):
    h = await login("handler_a")
    cid = await _case_in_investigation(app, h)
    seg = await add_segment(app, tmp_path, "officer_a", WHEN + dt.timedelta(minutes=3))
    await add_segment(app, tmp_path, "officer_a", WHEN + dt.timedelta(hours=5))  # outside
    r = await h.api("POST", f"/api/v1/cases/{cid}/records",
                    {"kind": "site_inspection", "fields": inspection(WHEN),
                     "window_end": (WHEN + dt.timedelta(minutes=30)).isoformat()})
    assert r.status_code == 201
    d = (await h.get(f"/api/v1/cases/{cid}")).json()
    assert [c["segment_id"] for c in d["clips"]] == [seg]
    assert d["clips"][0]["how"] == "auto" and d["records"][0]["clips"] == [seg]
    assert not any(f["code"] == "av_required_missing" for f in d["findings"])


async def test_step_source_for_oversight(app, login, tmp_path):
    from lerec.hub.cases.service import CaseStepSource

    h = await login("handler_a")
    cid = await _case_in_investigation(app, h)
    await h.api("POST", f"/api/v1/cases/{cid}/records",
                {"kind": "site_inspection", "fields": inspection(WHEN)})
    src = CaseStepSource(app.state.rulebook)
    async with app.state.sessions() as s:
        steps = await src.steps_for(s, "officer_a", WHEN, WHEN + dt.timedelta(minutes=5))
        assert [(st.case_id, st.assignees) for st in steps] == [
            (str(cid), frozenset({"officer_a", "handler_a"}))]
        assert await src.steps_for(s, "officer_b", WHEN, WHEN) == []
        assert await src.steps_for(s, "officer_a", WHEN + dt.timedelta(days=1),
                                   WHEN + dt.timedelta(days=1, hours=1)) == []


async def test_playback_serves_byte_ranges_and_audits_views_and_downloads(
        app, login, tmp_path):
    h = await login("handler_a")
    cid = await _case_in_investigation(app, h)
    data = bytes(range(256)) * 40  # 10240 bytes
    seg = await add_segment(app, tmp_path, "officer_b", WHEN, data=data)
    await h.api("POST", f"/api/v1/cases/{cid}/clips", {"segment_id": seg})
    url = f"/cases/{cid}/clips/{seg}/media"
    r = await h.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["content-range"] == "bytes 100-199/10240"
    assert r.headers["accept-ranges"] == "bytes" and r.headers["content-length"] == "100"
    r = await h.get(url, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = await h.get(url, headers={"Range": "bytes=10000-"})
    assert r.status_code == 206 and r.content == data[10000:]
    r = await h.get(url)
    assert r.status_code == 200 and r.content == data
    r = await h.get(url, headers={"Range": "bytes=99999-"})
    assert r.status_code == 416 and "范围" in r.text
    r = await h.get(url + "?download=1")
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    rows = [row for row in await audit_rows(app) if f"segment:{seg}" in row[3]]
    kinds = [row[1] for row in rows]
    assert kinds.count("view") == 1  # one view per session and clip, not one per range
    assert kinds.count("download") == 1
    assert all(row[2] == "user:handler_a" for row in rows if row[1] in ("view", "download"))
    # another person viewing is another audit entry
    a = await login("auditor")
    assert (await a.get(url, headers={"Range": "bytes=0-1"})).status_code == 206
    views = [row for row in await audit_rows(app, "view") if f"segment:{seg}" in row[3]]
    assert [row[2] for row in views] == ["user:handler_a", "user:auditor"]


async def test_clip_of_another_case_is_not_served(app, login, tmp_path):
    h = await login("handler_a")
    cid = await _case_in_investigation(app, h)
    other = await (await login("handler_b")).create_case()
    seg = await add_segment(app, tmp_path, "officer_b", WHEN, data=b"x" * 100)
    r = await h.get(f"/cases/{cid}/clips/{seg}/media")
    assert r.status_code == 404 and "不属于本案" in r.text
    r = await h.get(f"/cases/{other['id']}/clips/{seg}/media")
    assert r.status_code == 404
    assert [row[4]["reason"] for row in await audit_rows(app)
            if row[4].get("outcome") == "denied"] == ["segment_scope", "case_scope"]


async def test_audio_clip_needs_a_transcript(app, login, tmp_path):
    h = await login("handler_a")
    cid = await _case_in_investigation(app, h)
    seg = await add_segment(app, tmp_path, "officer_b", WHEN, data=b"a" * 100,
                            media_type="audio/mp4")
    await h.api("POST", f"/api/v1/cases/{cid}/clips", {"segment_id": seg})
    findings = (await h.get(f"/api/v1/cases/{cid}/findings")).json()
    assert any(f["code"] == "audio_without_transcript" and f["article"] == 27 for f in findings)
    r = await h.post(f"/cases/{cid}/clips/{seg}/transcript", {"transcript": "问：姓名？答：刘某。"})
    assert r.status_code == 303
    findings = (await h.get(f"/api/v1/cases/{cid}/findings")).json()
    assert not any(f["code"] == "audio_without_transcript" for f in findings)
